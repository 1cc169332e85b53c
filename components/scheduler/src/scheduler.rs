use std::collections::{BTreeSet, VecDeque};
use std::hash::BuildHasher;

// The core's hash maps are keyed by ids and origins; foldhash is several times faster than
// SipHash on them and keeps per-map random seeds.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

use bgsync_store::{RegistrationKey, StoreOp, StoredRegistration};
use bgsync_types::{
    DispatchId, DomException, DomExceptionName, Origin, Partition, PermissionState, PersistId,
    RequestId, StorageKey, SwRegistrationId, SyncKind, Tag, Timestamp,
};

use crate::{
    DispatchOutcome, DispatchRequest, Effect, LogEntry, LogEvent, NextStep, Parameters,
    RegistrationState, Response, StoreOps,
};

/// A registration is known by its service worker registration and tag.
type Key = (SwRegistrationId, Tag);

/// What the embedder knew about the caller when `register()` was called.
///
/// The driver fills it in from the embedder's traits at call time; the core only reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterContext {
    /// The storage key (origin and partition) of the service worker registration, `None` if
    /// there is no such registration.
    pub registration_key: Option<StorageKey>,
    /// Whether the registration has an active worker.
    pub has_active_worker: bool,
    /// Whether the origin has a top-level or auxiliary window client (it is not "in the
    /// background").
    pub has_window_client: bool,
    /// The "background-sync" permission of the caller's origin.
    pub permission: PermissionState,
}

impl RegisterContext {
    /// A context in which `register()` may succeed: `key` owns the registration, which has an
    /// active worker, the origin has a window open and permission is granted.
    pub fn ready(key: impl Into<StorageKey>) -> Self {
        RegisterContext {
            registration_key: Some(key.into()),
            has_active_worker: true,
            has_window_client: true,
            permission: PermissionState::Granted,
        }
    }
}

/// One `SyncManager.register(tag)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterCall {
    /// The storage key of the calling context: its origin, and its partition in an engine that
    /// partitions storage.
    pub caller: StorageKey,
    /// The `SyncManager`'s service worker registration.
    pub sw: SwRegistrationId,
    /// The tag, already converted to a DOMString.
    pub tag: Tag,
    /// What the embedder knew at call time.
    pub context: RegisterContext,
}

#[derive(Debug, Clone)]
struct SyncRegistration {
    origin: Origin,
    /// Its place in the service worker registration's list (the order `getTags()` answers in).
    /// 32 bits fit beside the attempt counts, where 64 would grow every registration by 8
    /// bytes; after 2^32 registrations in one profile, later ones share the last place and list
    /// among themselves in key order.
    seq: u32,
    state: RegistrationState,
    /// Failed attempts so far (counted when an event ends, never at dispatch).
    attempts: u32,
    max_attempts: u32,
    /// The end of the current back-off (only meaningful while waiting).
    next_fire: Timestamp,
    /// The event in flight, if firing.
    in_flight: Option<InFlight>,
    /// A change to it is waiting for the store: inputs for it queue until that is durable.
    busy: bool,
    /// The place of its storage key's quota usage (`Scheduler::usages`).
    usage: u32,
}

/// A registration in its slot.
#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    reg: SyncRegistration,
}

/// What a staged change is about: a key, and the slot its registration had when the change was
/// staged (none for a new registration).
#[derive(Debug)]
pub(crate) struct Target {
    key: Key,
    slot: Option<u32>,
}

/// An event in flight: its id with lastChance in the top bit, in 8 bytes, an `Option` of it
/// too (the core's ids are below 2^63 and never 0), so that every registration is smaller.
#[derive(Debug, Clone, Copy)]
struct InFlight(std::num::NonZeroU64);

impl InFlight {
    const LAST_CHANCE: u64 = 1 << 63;

    fn new(id: DispatchId, last_chance: bool) -> InFlight {
        let bits = id.0 | if last_chance { Self::LAST_CHANCE } else { 0 };
        // `dispatch_id` counts from 1 in the high 32 bits: never 0.
        InFlight(std::num::NonZeroU64::new(bits).unwrap_or(std::num::NonZeroU64::MAX))
    }

    fn id(self) -> DispatchId {
        DispatchId(self.0.get() & !Self::LAST_CHANCE)
    }

    fn last_chance(self) -> bool {
        self.0.get() & Self::LAST_CHANCE != 0
    }
}

impl SyncRegistration {
    /// The record stored for it; `partition` is its service worker registration's.
    fn record(&self, key: &Key, partition: Partition) -> StoredRegistration {
        StoredRegistration {
            origin: self.origin.clone(),
            partition,
            seq: u64::from(self.seq),
            sw: key.0,
            tag: key.1.clone(),
            kind: SyncKind::OneShot,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            next_fire: self.next_fire,
            periodic_interval: None,
        }
    }
}

/// The storage key the quotas count `sw`'s registrations under: `sw`'s, or `origin`'s default
/// partition if `sw` is not known. Borrowed when it can be: most calls are for a key already
/// counted, and cloning one is not free.
fn quota_key<'a>(
    sw_keys: &'a HashMap<SwRegistrationId, StorageKey>,
    sw: SwRegistrationId,
    origin: &Origin,
) -> std::borrow::Cow<'a, StorageKey> {
    match sw_keys.get(&sw) {
        Some(k) if k.origin == *origin => std::borrow::Cow::Borrowed(k),
        _ => std::borrow::Cow::Owned(StorageKey::new(origin.clone())),
    }
}

/// The partition of `sw`'s storage key (the default one if `sw` is not known).
fn partition_in(
    sw_keys: &HashMap<SwRegistrationId, StorageKey>,
    sw: SwRegistrationId,
) -> Partition {
    sw_keys
        .get(&sw)
        .map(|k| k.partition.clone())
        .unwrap_or_default()
}

/// What one storage key's registrations take, for the quotas. Not in the spec.
#[derive(Debug, Clone, Default)]
struct Usage {
    count: usize,
    bytes: u64,
    /// The storage key (None while the place is free).
    key: Option<StorageKey>,
}

/// The parts of a new registration's record its acknowledgement needs (the key is the staged
/// change's target). Held in the staged change, not boxed: a copy of the whole record, in an
/// allocation of its own, cost each register an allocation and three shared counts, and its
/// read at the acknowledgement a cache miss, since the commit in between evicts it.
#[derive(Debug)]
pub(crate) struct NewRecord {
    origin: Origin,
    seq: u32,
    max_attempts: u32,
    next_fire: Timestamp,
}

/// A change waiting for its store acknowledgement before it becomes visible.
#[derive(Debug)]
pub(crate) enum Staged {
    /// A new registration; resolve `request` once it is durable.
    NewRegistration {
        request: RequestId,
        /// What the registration is made of once durable, besides its key (the change's
        /// target): not the whole record, which went to the store.
        record: NewRecord,
        /// Set when the registration's data was removed (unregistration, clear-site-data)
        /// while the write was in flight: the call is then rejected with this.
        cancelled: Option<DomException>,
        /// The place of its storage key's quota usage, counted when it was staged.
        usage: u32,
    },
    /// `register()` on a waiting registration: the record was rewritten with its back-off
    /// ended; it becomes pending once that is durable.
    ReregisterWhileWaiting { request: RequestId },
    /// The end of an event: the record was rewritten (retry) or deleted.
    Completion {
        outcome: DispatchOutcome,
        next: NextStep,
    },
    /// A bulk removal; `request`, if any, is settled with the write's result.
    Removal { request: Option<RequestId> },
    /// Records rewritten with what the core already holds (the times moved back with the
    /// clock): nothing waits for it. If it fails, the store keeps the older times, which a
    /// restart bounds by one back-off (`restore_one`).
    Rewrite,
    /// A periodic registration's change (`periodic`): `request` resolves once it is durable;
    /// `change` is applied, or undone, by the write's result.
    Periodic {
        request: RequestId,
        change: Option<crate::periodic::PeriodicChange>,
    },
}

/// An input that touched a key whose previous change is not yet durable; it runs once it is.
#[derive(Debug)]
enum Deferred {
    /// A call, with its place in the list's order taken when it was made.
    Register(RequestId, RegisterCall, u32),
    Completion(DispatchId, DispatchOutcome),
}

/// The Background Sync state machine for one user agent.
///
/// Every method that takes a `now` first lets time advance to it, running any retry wait that
/// ended; the caller must drain [`poll_effect`](Scheduler::poll_effect) after each call.
#[derive(Debug)]
pub struct Scheduler {
    params: Parameters,
    now: Timestamp,
    online: bool,
    /// Every committed registration, in a slab. A dispatch's id carries its registration's
    /// slot and a staged change its slot, so the end of an event and the acknowledgement of
    /// its write find the registration by index, without a search.
    slots: Vec<Option<Entry>>,
    /// Slots free for reuse.
    free: Vec<u32>,
    /// The slots by key's hash, for exact lookups: 12 bytes a place, the key itself being the
    /// slab's (a tree of keys took about 60 bytes a registration and a walk of three or four
    /// nodes per lookup). Removing a registration leaves its place here and in its list
    /// (counted in `stale`, skipped by every reader) until the next compaction, so a removal
    /// needs no search either.
    index: hashbrown::HashTable<Hashed>,
    /// Each service worker registration's places, in the order they were put in the slab: its
    /// list for getTags and unregistration.
    lists: HashMap<SwRegistrationId, Vec<Place>>,
    /// Hashes keys for `index`.
    hasher: foldhash::fast::RandomState,
    /// Each slot's generation, bumped when its registration is removed: an index entry is live
    /// when it has its slot's generation. (Kept apart from the slab so that telling stale
    /// entries from live ones reads 4 bytes a slot, not the registration.)
    generations: Vec<u32>,
    /// Places of removed registrations still in `lists` (`index` holds at most as many).
    stale: usize,
    /// How many registrations the slab holds.
    live: usize,
    /// The most registrations the slab has held: while most registrations are going (a
    /// fan-out), the index is left to grow up to this before it is compacted.
    peak_live: usize,
    /// Waiting registrations by the end of their back-off.
    retry_timers: BTreeSet<(Timestamp, Key)>,
    /// Events in flight (registrations with an event whose outcome has not been settled).
    in_flight: usize,
    /// The origin of every service worker registration we hold registrations for.
    sw_keys: HashMap<SwRegistrationId, StorageKey>,
    /// Service worker registrations that were unregistered; their ids are never reused.
    unregistered: HashSet<SwRegistrationId>,
    /// What each storage key's registrations (committed or being committed) take, for the
    /// quotas: in a slab, so that a registration keeps the place of its key's and its removal
    /// needs no lookup; `usage_of` finds a key's place.
    usages: Vec<Usage>,
    usage_of: HashMap<StorageKey, u32>,
    /// Places in `usages` free for reuse.
    free_usages: Vec<u32>,
    /// The bytes of every origin's registrations, for the global quota.
    total_bytes: u64,
    /// The next registration's place in its list (larger than every place given so far).
    next_seq: u32,
    /// Origins whose "background-sync" permission is denied.
    denied: HashSet<Origin>,
    /// Keys with a change waiting for the store that have no registration in the slab (a new
    /// registration, or one removed while its change was being written), with the index's hash
    /// of each: the hash is taken once a call and reused by the index, the busy check and this
    /// set. (A registration in the slab is marked busy in its slot.)
    busy_keys: hashbrown::HashTable<(u32, Key)>,
    /// The inputs queued behind a busy key's change.
    deferred: HashMap<Key, VecDeque<Deferred>>,
    /// Changes waiting for the store: persist id `staged_base + i` at `i`. The store
    /// acknowledges writes in order, so the front is taken and the queue stays short.
    staged: VecDeque<Option<(Option<Target>, Staged)>>,
    staged_base: u64,
    effects: VecDeque<Effect>,
    /// Registrations that going online (or a grant) decided to fire, in the list's order, not
    /// yet fired: each fires as the effects before it have been taken
    /// ([`poll_effect`](Scheduler::poll_effect)), so a driver can settle the first events
    /// while the later ones are still to be sent, and a fan-out of many registrations touches
    /// a round's worth of them at a time. Any input other than an outcome, a store
    /// acknowledgement or the time fires the rest first, so what it sees is what firing them
    /// all at once would have left.
    fire_queue: VecDeque<u32>,
    log: Vec<LogEntry>,
    next_dispatch: u64,
    next_persist: u64,
    /// The periodic registrations (`periodic`).
    pub(crate) periodic: crate::periodic::Periodic,
}

impl Scheduler {
    /// An empty scheduler that believes it is online (an unknown network counts as online).
    pub fn new(params: Parameters) -> Self {
        Scheduler {
            params,
            now: Timestamp(0),
            online: true,
            slots: Vec::new(),
            free: Vec::new(),
            index: hashbrown::HashTable::new(),
            lists: HashMap::default(),
            hasher: foldhash::fast::RandomState::default(),
            generations: Vec::new(),
            stale: 0,
            live: 0,
            peak_live: 0,
            retry_timers: BTreeSet::new(),
            in_flight: 0,
            sw_keys: HashMap::default(),
            unregistered: HashSet::default(),
            usages: Vec::new(),
            usage_of: HashMap::default(),
            free_usages: Vec::new(),
            total_bytes: 0,
            next_seq: 1,
            denied: HashSet::default(),
            busy_keys: hashbrown::HashTable::new(),
            deferred: HashMap::default(),
            staged: VecDeque::new(),
            staged_base: 1,
            effects: VecDeque::new(),
            fire_queue: VecDeque::new(),
            log: Vec::new(),
            next_dispatch: 1,
            next_persist: 1,
            periodic: Default::default(),
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// The latest time the scheduler has been given.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Whether the scheduler believes the user agent is online.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The next effect to carry out, in the order they arose. A registration that going online
    /// queued to fire fires when the effects before it have been taken: a driver that takes
    /// the outcomes that arrived every so many dispatches (as the facade's does,
    /// `bgsync::DISPATCH_ROUND`) settles a fan-out in bounded rounds.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        while self.effects.is_empty() {
            let slot = self.fire_queue.pop_front()?;
            self.try_fire(slot);
        }
        self.effects.pop_front()
    }

    /// The next effect if it is the settlement of a call: nothing else is taken, and the
    /// registrations queued to fire stay queued. A driver that takes the settlements after each
    /// input answers each caller as soon as its answer is known (after each write of a commit
    /// is acknowledged, say) and leaves every other effect to [`poll_effect`], in order.
    ///
    /// [`poll_effect`]: Scheduler::poll_effect
    pub fn poll_settlement(&mut self) -> Option<(RequestId, Result<Response, DomException>)> {
        match self.effects.front() {
            Some(Effect::Settle { .. }) => match self.effects.pop_front() {
                Some(Effect::Settle { request, result }) => Some((request, result)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Fires every registration still queued to fire (before any input that could observe
    /// them as pending).
    fn fire_queued(&mut self) {
        while let Some(slot) = self.fire_queue.pop_front() {
            self.try_fire(slot);
        }
    }

    /// Takes the log lines written since the last call.
    pub fn take_log(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.log)
    }

    /// Moves the log lines written since the last call to the end of `out`. Unlike
    /// [`take_log`](Scheduler::take_log), the core keeps its buffer, so a driver that drains the
    /// log after every round does not grow a new one each time. Into an empty `out`, the two
    /// buffers are exchanged rather than the lines copied (a fan-out logs a line or more per
    /// registration).
    pub fn append_log_to(&mut self, out: &mut Vec<LogEntry>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.log);
        } else {
            out.append(&mut self.log);
        }
    }

    /// When the scheduler must next be given the time: the end of the soonest back-off.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let one_shot = self.retry_timers.first().map(|(t, _)| *t);
        // Periodic registrations fire only online: offline, a due one waits for the network,
        // not for a timer (a timer already due would wake the driver for nothing, again).
        let periodic = if self.online {
            self.periodic.poll_timeout()
        } else {
            None
        };
        match (one_shot, periodic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn push_log(&mut self, entry: LogEntry) {
        self.log.push(entry);
    }

    pub(crate) fn push_effect(&mut self, effect: Effect) {
        self.effects.push_back(effect);
    }

    /// Records the storage key `sw` belongs to, if not yet known.
    pub(crate) fn note_sw_key(&mut self, sw: SwRegistrationId, key: &StorageKey) {
        self.sw_keys.entry(sw).or_insert_with(|| key.clone());
    }

    /// The soonest time the user agent must be woken (for an OS wake-up): the end of the soonest
    /// back-off, and, while events are in flight, no later than the recovery time from now, so
    /// a user agent killed mid-event is woken to fire again.
    pub fn wake_up_time(&self) -> Option<Timestamp> {
        let recovery =
            (self.in_flight > 0 || self.periodic.in_flight() > 0 || !self.fire_queue.is_empty())
                .then(|| self.now.saturating_add(self.params.min_sync_recovery_time));
        let one_shot = self.retry_timers.first().map(|(t, _)| *t);
        let periodic = self.periodic.wake_up(self.params.min_periodic_interval);
        [one_shot, periodic, recovery].into_iter().flatten().min()
    }

    /// The state of the registration `tag` of `sw`, if there is one (for DevTools and tests).
    pub fn registration_state(&self, sw: SwRegistrationId, tag: &Tag) -> Option<RegistrationState> {
        self.get(&(sw, tag.clone())).map(|r| r.state)
    }

    /// Failed attempts so far of the registration `tag` of `sw`.
    pub fn attempts(&self, sw: SwRegistrationId, tag: &Tag) -> Option<u32> {
        self.get(&(sw, tag.clone())).map(|r| r.attempts)
    }

    /// How many registrations the scheduler holds.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Entries in the key index, stale ones (of registrations removed since its last
    /// compaction) included: for diagnostics and tests of the compaction.
    pub fn index_entries(&self) -> usize {
        self.index.len()
    }

    /// Whether the scheduler holds no registration.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The slot of `key`'s registration, if there is one.
    fn slot_of(&self, key: &Key) -> Option<u32> {
        self.find(key, self.hash(key))
    }

    /// `key`'s hash in `index`.
    fn hash(&self, key: &Key) -> u32 {
        // The low half of a 64-bit hash: `Hashed::table_hash` spreads it again.
        self.hasher.hash_one(key) as u32
    }

    /// [`slot_of`](Scheduler::slot_of) with the key's hash already computed.
    fn find(&self, key: &Key, hash: u32) -> Option<u32> {
        let (slots, generations) = (&self.slots, &self.generations);
        let found = self.index.find(Hashed::table_hash(hash), |h| {
            h.hash == hash
                && h.place.live(generations)
                && slots
                    .get(h.place.slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.key == *key)
        })?;
        Some(found.place.slot)
    }

    fn get(&self, key: &Key) -> Option<&SyncRegistration> {
        self.slot_of(key).map(|s| &self.entry(s).reg)
    }

    /// The registration in `slot`, which the caller knows is occupied.
    fn entry(&self, slot: u32) -> &Entry {
        self.slots[slot as usize]
            .as_ref()
            .expect("an occupied slot")
    }

    fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        self.slots[slot as usize]
            .as_mut()
            .expect("an occupied slot")
    }

    /// The registration in `slot` if it is still `key`'s: a slot is reused once freed.
    fn entry_of(&mut self, slot: u32, key: &Key) -> Option<&mut Entry> {
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .filter(|e| e.key == *key)
    }

    /// Puts a registration (for a key that has none) in a slot; `hash` is the key's.
    fn insert_hashed(&mut self, key: Key, hash: u32, reg: SyncRegistration) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 registrations")
            }
        };
        let place = Place {
            slot,
            generation: self.generations[slot as usize],
        };
        self.lists.entry(key.0).or_default().push(place);
        self.slots[slot as usize] = Some(Entry { key, reg });
        // The places this key's earlier registrations left (and, rarely, another key's with the
        // same 32-bit hash) are stale: dropped here, so that a tag registered again and again
        // does not pile its old places up in one probe sequence until the next compaction. The
        // lists keep theirs until then, which `stale` still counts.
        let generations = &self.generations;
        while let Ok(old) = self.index.find_entry(Hashed::table_hash(hash), |h| {
            h.hash == hash && !h.place.live(generations)
        }) {
            old.remove();
        }
        self.index.insert_unique(
            Hashed::table_hash(hash),
            Hashed { hash, place },
            Hashed::rehash,
        );
        self.live += 1;
        self.peak_live = self.peak_live.max(self.live);
        slot
    }

    /// Takes the registration out of `slot`, leaving its index entry stale.
    fn remove(&mut self, slot: u32) -> Entry {
        let entry = self.slots[slot as usize].take().expect("an occupied slot");
        // A stale entry lives until the next compaction, fewer removals later than the index
        // holds entries (four a registration, or the most registrations there were): far
        // fewer than it takes this count to come round again.
        let generation = &mut self.generations[slot as usize];
        *generation = generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        self.stale += 1;
        if entry.reg.in_flight.is_some() {
            self.in_flight -= 1;
        }
        // Compacted when stale entries are three times the live ones: each compaction visits
        // the whole index, and this spacing keeps its cost per removal constant (about 1.3
        // visits) while the index holds at most four entries per registration. Not while most
        // live ones are in flight, queued to fire or being written (a fan-out) and the index
        // holds no more entries than the most registrations there were: those are about to go
        // too, and a compaction then would rebuild a tree only to drop it soon after.
        let going = self.in_flight + self.fire_queue.len() + self.staged.len();
        let fan_out = going > self.live / 2 && self.index.len() <= self.peak_live;
        if self.live == 0 {
            self.index = hashbrown::HashTable::new();
            self.lists = HashMap::default();
            self.stale = 0;
        } else if self.stale > 1_024 && self.stale > 3 * self.live && !fan_out {
            self.compact();
        }
        entry
    }

    /// Drops the places of removed registrations from the index and the lists, and gives back
    /// memory a table or list holds beyond four times what it keeps.
    fn compact(&mut self) {
        let generations = &self.generations;
        self.index.retain(|h| h.place.live(generations));
        if self.index.capacity() > 4 * self.index.len() {
            self.index.shrink_to_fit(Hashed::rehash);
        }
        self.lists.retain(|_, list| {
            list.retain(|p| p.live(generations));
            if list.capacity() > 4 * list.len() {
                list.shrink_to_fit();
            }
            !list.is_empty()
        });
        self.stale = 0;
    }

    /// The live slots of `sw`'s registrations, in the order they were put in the slab.
    fn slots_of(&self, sw: SwRegistrationId) -> impl Iterator<Item = u32> + '_ {
        self.lists
            .get(&sw)
            .into_iter()
            .flatten()
            .filter(|place| place.live(&self.generations))
            .map(|place| place.slot)
    }

    /// Every registration in key order.
    fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        let mut all: Vec<&Entry> = self.slots.iter().flatten().collect();
        all.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        all.into_iter()
    }

    /// Loads registrations from the store at start-up.
    ///
    /// Each is pending again with its attempt count kept (a user-agent crash is not a failed
    /// attempt); one whose back-off has not ended waits for it, the others fire as soon as they
    /// can. Periodic records are not this scheduler's and are skipped.
    pub fn restore(
        &mut self,
        now: Timestamp,
        records: impl IntoIterator<Item = StoredRegistration>,
    ) {
        for r in records {
            self.restore_one(now, r);
        }
        // Periodic registrations due by now fire (if online); `restore_one` leaves that to the
        // next change of time or network, so that streaming a store stays linear.
        self.fire_due_periodic();
    }

    /// [`restore`](Scheduler::restore) for one record, for drivers that stream the store.
    pub fn restore_one(&mut self, now: Timestamp, r: StoredRegistration) {
        // Periodic ones fire after the whole store is read (`restore`), or with the next
        // change of time or network: an origin's round must see all its registrations.
        self.fire_queued();
        self.advance_timers(now);
        if self.unregistered.contains(&r.sw) {
            return;
        }
        if r.kind == SyncKind::Periodic {
            self.restore_periodic(r);
            return;
        }
        let key = (r.sw, r.tag);
        // Note: a next-fire time beyond the longest back-off this registration can be in was
        // written under a clock that has since gone back; it waits no longer than that back-off.
        let latest = self
            .now
            .saturating_add(self.params.retry_delay(r.attempts.max(1)));
        let next_fire = r.next_fire.min(latest);
        let waiting = next_fire > self.now;
        self.sw_keys.entry(r.sw).or_insert_with(|| StorageKey {
            origin: r.origin.clone(),
            partition: r.partition,
        });
        let usage = self.count_origin(r.sw, &r.origin, &key.1);
        // Rows written before places were kept (0) go after the others, in the order read.
        let seq = if r.seq == 0 {
            self.next_seq
        } else {
            u32::try_from(r.seq).unwrap_or(u32::MAX)
        };
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
        let reg = SyncRegistration {
            origin: r.origin,
            seq,
            state: if waiting {
                RegistrationState::Waiting
            } else {
                RegistrationState::Pending
            },
            attempts: r.attempts,
            max_attempts: r.max_attempts.max(1),
            next_fire,
            in_flight: None,
            busy: false,
            usage,
        };
        let hash = self.hash(&key);
        if let Some(old) = self.find(&key, hash) {
            // A store never yields a key twice; if one did, keep the count honest.
            let old = self.remove(old);
            self.retry_timers.remove(&(old.reg.next_fire, key.clone()));
            self.uncount(old.reg.usage, &key.1);
        }
        if waiting {
            self.retry_timers.insert((next_fire, key.clone()));
            self.insert_hashed(key, hash, reg);
        } else {
            let slot = self.insert_hashed(key, hash, reg);
            self.try_fire(slot);
        }
    }

    /// Every registration the scheduler holds, as the store keeps it: what a store rebuilt
    /// after damage is rewritten from (changes not yet acknowledged are not included).
    pub fn stored_registrations(&self) -> Vec<StoredRegistration> {
        self.entries()
            .map(|e| e.reg.record(&e.key, self.partition_of(e.key.0)))
            .chain(self.stored_periodic())
            .collect()
    }

    /// The origins the scheduler holds registrations for (each once, whatever its partitions).
    pub fn origins(&self) -> Vec<Origin> {
        let mut seen: HashSet<&Origin> = HashSet::default();
        self.usage_of
            .keys()
            .filter(|k| seen.insert(&k.origin))
            .map(|k| k.origin.clone())
            .collect()
    }

    /// Every registration with its state, attempts, next fire time and what it waits for, in
    /// key order (for diagnostics; not in the spec).
    pub fn inspect(&self) -> Vec<crate::RegistrationSnapshot> {
        self.entries()
            .map(
                |Entry {
                     key: (sw, tag),
                     reg,
                 }| crate::RegistrationSnapshot {
                    origin: reg.origin.clone(),
                    partition: self.partition_of(*sw),
                    sw: *sw,
                    tag: tag.clone(),
                    state: reg.state,
                    attempts: reg.attempts,
                    max_attempts: reg.max_attempts,
                    next_fire: reg.next_fire,
                    waiting_for: match reg.state {
                        RegistrationState::Firing | RegistrationState::ReregisteredWhileFiring => {
                            Some(crate::WaitingFor::EventInFlight)
                        }
                        RegistrationState::Waiting => Some(crate::WaitingFor::BackOff),
                        _ if !self.online => Some(crate::WaitingFor::Network),
                        _ if self.denied.contains(&reg.origin) => {
                            Some(crate::WaitingFor::Permission)
                        }
                        _ => None,
                    },
                },
            )
            .collect()
    }

    /// The storage key the scheduler's registrations of `sw` belong to.
    pub fn service_worker_key(&self, sw: SwRegistrationId) -> Option<StorageKey> {
        self.sw_keys.get(&sw).cloned()
    }

    /// The partition of `sw`'s storage key (the default one if `sw` holds nothing).
    fn partition_of(&self, sw: SwRegistrationId) -> Partition {
        partition_in(&self.sw_keys, sw)
    }

    /// The service worker registrations the scheduler holds registrations for, in id order.
    pub fn service_worker_registrations(&self) -> Vec<SwRegistrationId> {
        let mut v: Vec<SwRegistrationId> = self.sw_keys.keys().copied().collect();
        v.sort();
        v
    }

    /// Lets time advance to `now`: every back-off that ended runs its retry wait. (Registrations
    /// still queued to fire stay queued: time ends back-offs and makes periodic registrations
    /// due, neither of which is about a pending one-shot registration.)
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance_within_round(now);
    }

    pub(crate) fn advance(&mut self, now: Timestamp) {
        self.fire_queued();
        self.advance_within_round(now);
    }

    /// [`advance`](Scheduler::advance) for the inputs that may arrive while registrations
    /// queued to fire are still queued: an event's outcome, a store's acknowledgement and the
    /// time. The first two are about a registration that already fired or was written, and
    /// change no other; time changes waiting and periodic registrations, not pending ones. So
    /// taking them before the rest fire leaves what they would have left after (except the
    /// times and the order of the later dispatches, which are those they are actually sent
    /// at).
    fn advance_within_round(&mut self, now: Timestamp) {
        self.advance_timers(now);
        self.fire_due_periodic();
    }

    /// [`advance`](Scheduler::advance) without firing periodic registrations.
    fn advance_timers(&mut self, now: Timestamp) {
        if now < self.now {
            self.clock_went_back(now);
        }
        self.now = now;
        while let Some((t, _)) = self.retry_timers.first() {
            if *t > self.now {
                break;
            }
            let Some((_, key)) = self.retry_timers.pop_first() else {
                break;
            };
            self.retry_wait_ended(key);
        }
    }

    /// Note: not in the spec (which counts back-offs in "a user agent defined delay"), nor
    /// in Chromium (which keeps wall-clock times, so its waits stretch by the jump). The wall
    /// clock went back (set by the user or by time sync): every wait keeps the time it had
    /// left, so a 5-minute back-off is not stretched by the jump. Every time the core holds
    /// that is now in the future moves back by the jump — back-off ends, and a pending
    /// registration's time (which would otherwise read as a back-off after a restart) — as do
    /// the periodic schedule's (`periodic_clock_went_back`); the records that change are
    /// written at once, so that a restart finds the same times. (A registration with a write
    /// already on its way is left to that write.)
    fn clock_went_back(&mut self, now: Timestamp) {
        let back = self.now.0 - now.0;
        let timers = std::mem::take(&mut self.retry_timers);
        self.retry_timers = timers
            .into_iter()
            .map(|(t, key)| (Timestamp(t.0.saturating_sub(back)), key))
            .collect();
        let mut ops = Vec::new();
        for slot in 0..self.slots.len() {
            let Some(Entry { key, reg }) = self.slots[slot].as_mut() else {
                continue;
            };
            if reg.next_fire <= now {
                continue;
            }
            reg.next_fire = Timestamp(reg.next_fire.0.saturating_sub(back));
            if !reg.busy {
                ops.push(StoreOp::Put(
                    reg.record(key, partition_in(&self.sw_keys, key.0)),
                ));
            }
        }
        ops.extend(self.periodic_clock_went_back(back));
        if !ops.is_empty() {
            self.stage(None, ops, Staged::Rewrite);
        }
    }

    /// [`register(tag)`](https://wicg.github.io/background-sync/spec/#dom-syncmanager-register),
    /// the part that runs in parallel, with Chromium's checks in Chromium's order.
    pub fn register(&mut self, now: Timestamp, request: RequestId, call: RegisterCall) {
        self.advance(now);
        let key = (call.sw, call.tag.clone());
        let hash = self.hash(&key);
        if self.is_busy_hashed(&key, hash) {
            // Its place in the order of registration is taken now: the list's order is the
            // order of the calls, even for one that waits for a write on its key.
            self.next_seq = self.next_seq.saturating_add(1);
            let seq = self.next_seq;
            self.deferred
                .entry(key)
                .or_default()
                .push_back(Deferred::Register(request, call, seq));
            return;
        }
        let caller = call.caller.clone();
        match self.register_steps(request, call, None, Some(hash)) {
            Ok(()) => {}
            Err(e) => {
                // Not in the spec: a refused register() leaves a line in the log, with why.
                self.log_for(
                    &key,
                    &caller.origin,
                    LogEvent::Rejected {
                        name: e.name,
                        message: e.message.clone(),
                    },
                );
                self.settle(request, Err(e))
            }
        }
    }

    /// The steps of `register()`; a new registration takes its place in the order of
    /// registration now, or at `seq` if the call took one when it was made.
    fn register_steps(
        &mut self,
        request: RequestId,
        call: RegisterCall,
        seq: Option<u32>,
        hash: Option<u32>,
    ) -> Result<(), DomException> {
        let RegisterCall {
            caller,
            sw,
            tag,
            context,
        } = call;
        // [SecureContext]: only potentially trustworthy origins may use the API.
        caller.origin.require_potentially_trustworthy()?;
        // The registration must be the caller's own (its origin, in its partition); never
        // reveal or touch another storage key's.
        self.check_owner(&caller, sw, context.registration_key.as_ref())?;
        // 1. Let serviceWorkerRegistration be the SyncManager's service worker registration.
        // 2. If its active worker is null, reject with an InvalidStateError.
        if !context.has_active_worker || self.unregistered.contains(&sw) {
            return Err(DomException::new(
                DomExceptionName::InvalidStateError,
                "Registration failed: the service worker registration has no active worker; wait \
                 for navigator.serviceWorker.ready before registering a sync",
            ));
        }
        // 3. If the user disabled background sync, reject with a NotAllowedError. (Before the
        //    window check, as the spec orders them; Chromium checks the window first:
        //    docs/chromium.md.) 'prompt' is not disabled: only 'denied' refuses.
        self.note_permission(&caller.origin, context.permission);
        if context.permission == PermissionState::Denied {
            return Err(DomException::new(
                DomExceptionName::NotAllowedError,
                "Registration failed: the background-sync permission is denied for this origin",
            ));
        }
        // 4-6. If the origin is in the background (no top-level or auxiliary window client),
        //      reject with an InvalidAccessError. Chromium refuses an over-long tag here too.
        if !context.has_window_client {
            return Err(DomException::new(
                DomExceptionName::InvalidAccessError,
                "Registration failed: a sync can only be registered while a window of the origin \
                 is open",
            ));
        }
        if tag.utf8_len() > self.params.max_tag_bytes {
            return Err(DomException::new(
                DomExceptionName::InvalidAccessError,
                format!(
                    "Registration failed: the tag is {} bytes of UTF-8; the limit is {}",
                    tag.utf8_len(),
                    self.params.max_tag_bytes
                ),
            ));
        }
        // 7. Let currentRegistration be the registration in the list with tag, if any.
        let key = (sw, tag);
        let hash = hash.unwrap_or_else(|| self.hash(&key));
        if let Some(slot) = self.find(&key, hash) {
            // 8. If currentRegistration is not null:
            let current = &self.entry(slot).reg;
            let state = current.state;
            let mut record = current.record(&key, caller.partition.clone());
            self.log_slot(slot, LogEvent::Reregistered { state });
            match state {
                // 8.1 If its state is waiting, set it to pending — once its end of back-off,
                //     moved to now, is durable, so that a restart does not wait it out. (Chromium
                //     keeps the back-off: docs/chromium.md.) Then 8.3 and 8.4, as below.
                RegistrationState::Waiting => {
                    record.next_fire = self.now;
                    self.stage(
                        Some(Target {
                            key,
                            slot: Some(slot),
                        }),
                        StoreOp::Put(record),
                        Staged::ReregisterWhileWaiting { request },
                    );
                }
                // 8.2 If its state is firing, set it to reregisteredWhileFiring: it owes one more
                //     full run. Nothing is written: its attempts are reset when the event
                //     completes, as Chromium does (the spec has no attempt count), so a restart
                //     before then keeps the count.
                RegistrationState::Firing => {
                    self.entry_mut(slot).reg.state = RegistrationState::ReregisteredWhileFiring;
                    self.settle(request, Ok(Response::Registered));
                }
                // 8.3 Resolve promise. 8.4 If online and pending, fire a sync event.
                RegistrationState::Pending | RegistrationState::ReregisteredWhileFiring => {
                    self.settle(request, Ok(Response::Registered));
                    if state == RegistrationState::Pending {
                        self.try_fire(slot);
                    }
                }
            }
            return Ok(());
        }
        // 9. Else: a new registration (tag, serviceWorkerRegistration, pending).
        let held_at = self.usage_of.get(&caller).copied();
        let (count, bytes_held) = held_at.map_or((0, 0), |at| {
            let usage = &self.usages[at as usize];
            (usage.count, usage.bytes)
        });
        if let Some(cap) = self.params.max_registrations_per_origin {
            if count >= cap {
                return Err(DomException::new(
                    DomExceptionName::QuotaExceededError,
                    format!(
                        "Registration failed: {caller} already holds {} sync registrations, \
                         the most one origin may hold; reuse a tag or wait for some to fire",
                        count
                    ),
                ));
            }
        }
        // Note: not in the spec (nor in Chromium): byte quotas per origin and for all origins,
        // so that long tags cannot fill the user's disk.
        let bytes = Parameters::footprint(&key.1);
        if let Some(cap) = self.params.max_bytes_per_origin {
            if bytes_held + bytes > cap {
                return Err(DomException::new(
                    DomExceptionName::QuotaExceededError,
                    format!(
                        "Registration failed: {caller}'s sync registrations take {} bytes and this \
                         one {bytes} more, over the {cap} bytes one origin may use; use shorter \
                         tags, reuse a tag, or wait for some to fire",
                        bytes_held
                    ),
                ));
            }
        }
        if let Some(cap) = self.params.max_bytes_total {
            if self.total_bytes + bytes > cap {
                return Err(DomException::new(
                    DomExceptionName::QuotaExceededError,
                    format!(
                        "Registration failed: the sync registrations of all origins take {} bytes \
                         and this one {bytes} more, over the {cap} bytes Background Sync may use; \
                         try again once some have fired",
                        self.total_bytes
                    ),
                ));
            }
        }
        // Known already, it is this key (check_owner saw to it).
        self.sw_keys.entry(sw).or_insert_with(|| caller.clone());
        // The key the quotas count `sw`'s registrations under is the caller's (check_owner saw
        // to it): its usage, found above, is counted without looking it up again.
        let usage = match held_at {
            Some(at) => {
                self.add_usage(at, &key.1);
                at
            }
            None => self.count_origin(sw, &caller.origin, &key.1),
        };
        let seq = seq.unwrap_or_else(|| {
            self.next_seq = self.next_seq.saturating_add(1);
            self.next_seq
        });
        let record = StoredRegistration {
            origin: caller.origin,
            partition: caller.partition,
            seq: u64::from(seq),
            sw,
            tag: key.1.clone(),
            kind: SyncKind::OneShot,
            attempts: 0,
            max_attempts: self.params.max_attempts.max(1),
            next_fire: self.now,
            periodic_interval: None,
        };
        let staged = NewRecord {
            origin: record.origin.clone(),
            seq,
            max_attempts: record.max_attempts,
            next_fire: record.next_fire,
        };
        // 9.2 Add it to the list — once it is durable; 9.3-9.4 then resolve and fire.
        self.stage_hashed(
            Some(Target { key, slot: None }),
            Some(hash),
            StoreOp::Put(record),
            Staged::NewRegistration {
                request,
                record: staged,
                cancelled: None,
                usage,
            },
        );
        Ok(())
    }

    pub(crate) fn check_owner(
        &self,
        caller: &StorageKey,
        sw: SwRegistrationId,
        registration_key: Option<&StorageKey>,
    ) -> Result<(), DomException> {
        let Some(owner) = registration_key else {
            return Err(DomException::new(
                DomExceptionName::InvalidStateError,
                format!("Registration failed: there is no service worker registration {sw}"),
            ));
        };
        let known = self.sw_keys.get(&sw);
        if owner != caller || known.is_some_and(|o| o != caller) {
            return Err(DomException::new(
                DomExceptionName::SecurityError,
                format!(
                    "The service worker registration {sw} does not belong to {caller}; a page may \
                     only use its own origin's registrations, in its own storage partition"
                ),
            ));
        }
        Ok(())
    }

    /// [`getTags()`](https://wicg.github.io/background-sync/spec/#dom-syncmanager-gettags).
    ///
    /// `registration_key` is the storage key owning `sw` as the embedder knows it (`None` if
    /// there is no such registration, which has no tags).
    pub fn get_tags(
        &mut self,
        now: Timestamp,
        request: RequestId,
        caller: &StorageKey,
        sw: SwRegistrationId,
        registration_key: Option<&StorageKey>,
    ) {
        self.advance(now);
        let result = caller
            .origin
            .require_potentially_trustworthy()
            .and_then(|()| {
                if registration_key.is_none() && !self.sw_keys.contains_key(&sw) {
                    return Ok(Vec::new());
                }
                self.check_owner(caller, sw, registration_key.or(Some(caller)))?;
                // 2. In parallel: 1. Let tags be the tags of every registration in the list.
                //    2. Resolve promise with tags. (Every state counts, firing included.)
                Ok(self.tags_of(sw))
            });
        self.settle(request, result.map(Response::Tags));
    }

    /// The tags of `sw`'s list, in the list's order: the order the registrations were made
    /// (the spec's list; Chromium sorts by UTF-8 bytes instead: docs/chromium.md).
    fn tags_of(&self, sw: SwRegistrationId) -> Vec<Tag> {
        let mut placed: Vec<(u32, &Tag)> = self
            .slots_of(sw)
            .map(|s| {
                let e = self.entry(s);
                (e.reg.seq, &e.key.1)
            })
            .collect();
        // Places are unique below 2^32; equal ones (after that) list in key order.
        placed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        placed.into_iter().map(|(_, t)| t.clone()).collect()
    }

    /// The user agent went online or offline.
    ///
    /// Going online runs the spec's "when the user agent goes online" steps: every pending
    /// registration whose origin has permission fires. Events in flight are not affected by
    /// going offline; nothing new is dispatched until the network returns.
    pub fn set_online(&mut self, now: Timestamp, online: bool) {
        self.advance(now);
        let was = self.online;
        self.online = online;
        if online && !was {
            self.fire_pending_registrations(|_| true);
            self.fire_due_periodic();
        }
    }

    /// [When the user agent goes online](https://wicg.github.io/background-sync/spec/#online):
    /// fire a sync event for each pending registration (of the origins `filter` selects), in
    /// the order of the list: the order they were registered in, as `getTags()` lists them.
    /// (Chromium fires in its map's order, by tag; the order is not observable from one page
    /// but by the order of events when many fire at once.)
    fn fire_pending_registrations(&mut self, filter: impl Fn(&Origin) -> bool) {
        if !self.online {
            return;
        }
        // One pass over the slab, in memory order: this happens once per network or permission
        // change, and keeping no index of blocked registrations saves memory on every one of
        // them. Then the ones to fire in their list order (places are unique below 2^32).
        let mut due: Vec<(u32, u32)> = Vec::with_capacity(self.live);
        due.extend(self.slots.iter().enumerate().filter_map(|(slot, e)| {
            let reg = &e.as_ref()?.reg;
            (reg.state == RegistrationState::Pending
                && filter(&reg.origin)
                && !self.denied.contains(&reg.origin))
            .then_some((reg.seq, slot as u32))
        }));
        due.sort_unstable();
        self.fire_queue
            .extend(due.into_iter().map(|(_, slot)| slot));
    }

    /// The "background-sync" permission of `origin` changed. While denied, nothing of the origin
    /// fires: the spec lets a user agent define "online" per origin, more strictly
    /// ([concepts](https://wicg.github.io/background-sync/spec/#online)), and a user who
    /// disabled background sync is offline for it (Chromium keeps firing: docs/chromium.md).
    /// When granted again (or 'prompt': not disabled), its pending registrations fire.
    pub fn set_permission(&mut self, now: Timestamp, origin: &Origin, state: PermissionState) {
        self.advance(now);
        self.note_permission(origin, state);
    }

    fn note_permission(&mut self, origin: &Origin, state: PermissionState) {
        let changed = match state {
            PermissionState::Denied => self.denied.insert(origin.clone()),
            // Nothing to look up while no origin is denied (the usual case, on every register).
            PermissionState::Granted | PermissionState::Prompt => {
                !self.denied.is_empty() && self.denied.remove(origin)
            }
        };
        if changed && state != PermissionState::Denied {
            self.fire_pending_registrations(|o| o == origin);
        }
    }

    /// The service worker registration `sw` was unregistered: its sync registrations are gone,
    /// an event in flight is abandoned and its outcome will be ignored.
    pub fn service_worker_unregistered(&mut self, now: Timestamp, sw: SwRegistrationId) {
        self.advance(now);
        self.unregistered.insert(sw);
        let held = self.drop_service_worker(sw, unregistered_error(sw), LogEvent::Unregistered);
        if held {
            self.stage(
                None,
                StoreOp::DeleteServiceWorker(sw),
                Staged::Removal { request: None },
            );
        }
    }

    /// Clearing a site's data for `origin`: every registration of the origin, in every
    /// partition, is removed, events in flight are abandoned, and calls still being stored are
    /// rejected. [`clear_storage_key`](Scheduler::clear_storage_key) clears one partition.
    /// `request` resolves with [`Response::Cleared`] once the removal is durable, or rejects with
    /// an `UnknownError` if the store failed (the rows then remain on disk: retry).
    pub fn clear_origin(&mut self, now: Timestamp, request: RequestId, origin: &Origin) {
        self.clear_where(
            now,
            request,
            |k| k.origin == *origin,
            StoreOp::DeleteOrigin(origin.clone()),
        );
    }

    /// [`clear_origin`](Scheduler::clear_origin) for one storage key: the origin's
    /// registrations in that partition only (clear-site-data in an engine that partitions
    /// storage, a container's data removed). Other partitions of the origin keep theirs.
    pub fn clear_storage_key(&mut self, now: Timestamp, request: RequestId, key: &StorageKey) {
        self.clear_where(
            now,
            request,
            |k| k == key,
            StoreOp::DeleteStorageKey(key.clone()),
        );
    }

    /// Removes the registrations of every service worker registration whose storage key
    /// `selected` picks, durably by `op`.
    fn clear_where(
        &mut self,
        now: Timestamp,
        request: RequestId,
        selected: impl Fn(&StorageKey) -> bool,
        op: StoreOp,
    ) {
        self.advance(now);
        let sws: Vec<SwRegistrationId> = self
            .sw_keys
            .iter()
            .filter(|(_, k)| selected(k))
            .map(|(sw, _)| *sw)
            .collect();
        for sw in sws {
            self.drop_service_worker(sw, cleared_error(), LogEvent::Cleared);
        }
        self.stage(
            None,
            vec![op],
            Staged::Removal {
                request: Some(request),
            },
        );
    }

    /// Removes every registration of every origin (the user cleared all browsing data);
    /// `request` settles as for [`clear_origin`](Scheduler::clear_origin).
    pub fn clear_all(&mut self, now: Timestamp, request: RequestId) {
        self.advance(now);
        let sws: Vec<SwRegistrationId> = self.sw_keys.keys().copied().collect();
        for sw in sws {
            self.drop_service_worker(sw, cleared_error(), LogEvent::Cleared);
        }
        self.stage(
            None,
            StoreOp::DeleteAll,
            Staged::Removal {
                request: Some(request),
            },
        );
    }

    /// Removes everything held for `sw`: its registrations (abandoning events in flight), the
    /// calls queued behind its writes (rejected with `error`) and its new registrations still
    /// being written (rejected with `error` when acknowledged). Returns whether anything of it
    /// was held.
    fn drop_service_worker(
        &mut self,
        sw: SwRegistrationId,
        error: DomException,
        event: LogEvent,
    ) -> bool {
        self.drop_periodic_of(sw, &event);
        // In key order, as they are logged and their events abandoned.
        let mut slots: Vec<u32> = self.slots_of(sw).collect();
        slots.sort_unstable_by(|a, b| self.entry(*a).key.cmp(&self.entry(*b).key));
        for slot in slots {
            // Outcomes of its event, in flight or queued behind its write, are ignored from now
            // on: its slot no longer holds it.
            let Entry { key, reg } = self.remove(slot);
            self.retry_timers.remove(&(reg.next_fire, key.clone()));
            if let Some(f) = reg.in_flight {
                self.effects
                    .push_back(Effect::AbandonDispatch { id: f.id() });
            }
            self.uncount(reg.usage, &key.1);
            self.log_for(&key, &reg.origin, event.clone());
            if reg.busy {
                // Its write is still on its way: the key stays busy until it is acknowledged.
                let hash = self.hash(&key);
                self.busy_insert(key, hash);
            }
        }
        let queued: Vec<Key> = self
            .deferred
            .keys()
            .filter(|k| k.0 == sw)
            .cloned()
            .collect();
        for key in queued {
            if let Some(queue) = self.deferred.remove(&key) {
                for item in queue {
                    if let Deferred::Register(request, ..) = item {
                        self.settle(request, Err(error.clone()));
                    }
                }
            }
        }
        for (target, staged) in self.staged.iter_mut().flatten() {
            if let (Some(target), Staged::NewRegistration { cancelled, .. }) = (target, staged) {
                if target.key.0 == sw {
                    *cancelled = Some(error.clone());
                }
            }
        }
        self.sw_keys.remove(&sw).is_some()
    }

    /// The outcome of a dispatched event: steps 3-5 of
    /// [fire a sync event](https://wicg.github.io/background-sync/spec/#fire-a-sync-event).
    /// Outcomes of unknown or abandoned events are ignored.
    pub fn dispatch_completed(&mut self, now: Timestamp, id: DispatchId, outcome: DispatchOutcome) {
        self.advance_within_round(now);
        if crate::periodic::is_periodic(id) {
            return self.periodic_completed(id, outcome);
        }
        let Some(slot) = self.slot_in_flight(id) else {
            return;
        };
        let entry = self.entry(slot);
        if entry.reg.busy {
            let key = entry.key.clone();
            self.deferred
                .entry(key)
                .or_default()
                .push_back(Deferred::Completion(id, outcome));
            return;
        }
        self.sync_event_settled(slot, outcome);
    }

    /// The slot of the registration whose event in flight is `id`, if that event is still its
    /// event in flight (the id carries the slot).
    fn slot_in_flight(&self, id: DispatchId) -> Option<u32> {
        let slot = (id.0 & u64::from(u32::MAX)) as u32;
        let entry = self.slots.get(slot as usize)?.as_ref()?;
        (entry.reg.in_flight.map(InFlight::id) == Some(id)).then_some(slot)
    }

    /// Steps 4-5 of [fire a sync event](https://wicg.github.io/background-sync/spec/#fire-a-sync-event).
    fn sync_event_settled(&mut self, slot: u32, outcome: DispatchOutcome) {
        let Some(Entry { key, reg }) = self.slots[slot as usize].as_mut() else {
            return;
        };
        self.in_flight -= 1;
        let key = key.clone();
        let last_chance = reg.in_flight.take().is_some_and(InFlight::last_chance);
        // 4.1 / 5.1 If the state is reregisteredWhileFiring: set it to pending, fire again if
        //     online, and stop — once its attempt count, reset (as Chromium resets it, here),
        //     is durable.
        if reg.state == RegistrationState::ReregisteredWhileFiring {
            reg.attempts = 0;
            reg.next_fire = self.now;
            let record = reg.record(&key, partition_in(&self.sw_keys, key.0));
            self.stage(
                Some(Target {
                    key,
                    slot: Some(slot),
                }),
                StoreOp::Put(record),
                Staged::Completion {
                    outcome,
                    next: NextStep::RunAgain,
                },
            );
            return;
        }
        let (op, next) = if outcome.is_success() {
            // 4.2 Otherwise remove the registration from the list (once that is durable).
            (StoreOp::Delete(store_key(&key)), NextStep::Removed)
        } else if !last_chance {
            // 5.2 If lastChance was false: set the state to waiting and, after the retry delay,
            //     run the retry wait (once the new attempt count is durable).
            reg.attempts = reg.attempts.saturating_add(1);
            let delay = self.params.retry_delay(reg.attempts);
            reg.next_fire = self.now.saturating_add(delay);
            (
                StoreOp::Put(reg.record(&key, partition_in(&self.sw_keys, key.0))),
                NextStep::RetryAfter(delay),
            )
        } else {
            // 5.3 Otherwise (lastChance was true) remove the registration from the list.
            (StoreOp::Delete(store_key(&key)), NextStep::GaveUp)
        };
        self.stage(
            Some(Target {
                key,
                slot: Some(slot),
            }),
            vec![op],
            Staged::Completion { outcome, next },
        );
    }

    /// The retry wait of step 5.2 of
    /// [fire a sync event](https://wicg.github.io/background-sync/spec/#fire-a-sync-event): the
    /// back-off ended; if the registration is still waiting, it becomes pending and fires if it
    /// can.
    fn retry_wait_ended(&mut self, key: Key) {
        // 1. Wait for the UA-defined delay (the timer that brought us here).
        // 2. If the registration is still in the list and waiting:
        let Some(slot) = self.slot_of(&key) else {
            return;
        };
        let reg = &mut self.entry_mut(slot).reg;
        if reg.state != RegistrationState::Waiting {
            return;
        }
        // 2.1 Set its state to pending. 2.2 If online, fire a sync event for it.
        reg.state = RegistrationState::Pending;
        self.try_fire(slot);
    }

    /// Fires `key` now if the user agent is online and its origin has permission; otherwise it
    /// stays pending until one of those changes.
    fn try_fire(&mut self, slot: u32) {
        let Some(Entry { key, reg }) = self.slots[slot as usize].as_mut() else {
            return;
        };
        // Otherwise it stays pending; going online or a grant fires it.
        if reg.state == RegistrationState::Pending
            && self.online
            && !self.denied.contains(&reg.origin)
        {
            let id = dispatch_id(&mut self.next_dispatch, slot);
            Self::fire_sync_event(
                reg,
                key.clone(),
                id,
                self.now,
                self.params.max_sync_event_duration,
                &mut self.in_flight,
                &mut self.log,
                &mut self.effects,
            );
        }
    }

    /// Steps 1-2 of [fire a sync event](https://wicg.github.io/background-sync/spec/#fire-a-sync-event);
    /// the caller checked that the registration is pending and may fire. (It takes the fields it
    /// needs rather than `self`, so the registration is looked up once.)
    #[allow(clippy::too_many_arguments)]
    fn fire_sync_event(
        reg: &mut SyncRegistration,
        key: Key,
        id: DispatchId,
        now: Timestamp,
        time_limit: std::time::Duration,
        in_flight: &mut usize,
        log: &mut Vec<LogEntry>,
        effects: &mut VecDeque<Effect>,
    ) {
        // 1. Assert: the state is pending. 2. Set it to firing.
        reg.state = RegistrationState::Firing;
        // 3. lastChance is true iff the user agent will not retry after this attempt — decided
        //    now, at dispatch.
        let last_chance = Parameters::is_last_chance(reg.attempts, reg.max_attempts);
        reg.in_flight = Some(InFlight::new(id, last_chance));
        *in_flight += 1;
        log.push(LogEntry {
            time: now,
            origin: reg.origin.clone(),
            sw: key.0,
            tag: key.1.clone(),
            event: LogEvent::Dispatched {
                last_chance,
                previous_attempts: reg.attempts,
            },
        });
        // 4. Fire functional event "sync" using SyncEvent on the registration with tag and
        //    lastChance; the outcome comes back through dispatch_completed.
        effects.push_back(Effect::Dispatch(DispatchRequest {
            id,
            sw: key.0,
            origin: reg.origin.clone(),
            tag: key.1,
            last_chance,
            time_limit,
            kind: SyncKind::OneShot,
        }));
    }

    /// The store acknowledged (or failed) the `Persist` effect `id`.
    ///
    /// On success the change becomes visible: a new registration resolves its `register()` and
    /// fires, a finished event's back-off starts or its registration goes. A new registration
    /// whose write failed is rejected with an `UnknownError` and leaves no trace. A failed
    /// completion write still takes effect in memory (the store is one step behind, so after a
    /// crash the registration may fire once more — never once less).
    pub fn persist_completed(&mut self, now: Timestamp, id: PersistId, result: Result<(), String>) {
        self.advance_within_round(now);
        let Some((target, staged)) = self.take_staged(id) else {
            return;
        };
        // The registration the change is about, if it is still in the slot it had.
        let slot = target
            .as_ref()
            .and_then(|t| t.slot.filter(|&s| self.entry_of(s, &t.key).is_some()));
        match staged {
            Staged::NewRegistration {
                request,
                record,
                cancelled,
                usage,
            } => {
                let Some(Target { key, .. }) = target else {
                    // Never so: a new registration is staged with its key.
                    return self.settle(
                        request,
                        Err(DomException::new(
                            DomExceptionName::UnknownError,
                            "Registration failed: the engine lost the registration's key",
                        )),
                    );
                };
                let mut hashed = None;
                if let Err(cause) = result {
                    self.uncount(usage, &key.1);
                    self.log_for(
                        &key,
                        &record.origin,
                        LogEvent::StoreFailed {
                            cause: cause.clone(),
                        },
                    );
                    self.settle(request, Err(storage_error(&cause)));
                } else if let Some(error) = cancelled {
                    self.uncount(usage, &key.1);
                    self.settle(request, Err(error));
                } else {
                    // 9.2 Add it to the list. 9.3 Resolve promise. 9.4 If online, fire.
                    let hash = self.hash(&key);
                    let slot = self.insert_hashed(
                        key.clone(),
                        hash,
                        SyncRegistration {
                            origin: record.origin,
                            seq: record.seq,
                            state: RegistrationState::Pending,
                            attempts: 0,
                            max_attempts: record.max_attempts,
                            next_fire: record.next_fire,
                            in_flight: None,
                            busy: false,
                            usage,
                        },
                    );
                    self.log_slot(slot, LogEvent::Registered);
                    self.settle(request, Ok(Response::Registered));
                    self.try_fire(slot);
                    hashed = Some(hash);
                }
                // The key's hash, if taken above for the index, serves the busy set too.
                self.release_hashed(key, None, hashed);
            }
            Staged::ReregisterWhileWaiting { request } => {
                let Some(Target { key, .. }) = target else {
                    return;
                };
                match (result, slot) {
                    (Ok(()), Some(slot)) => {
                        let now = self.now;
                        let reg = &mut self.entry_mut(slot).reg;
                        if reg.state == RegistrationState::Waiting {
                            let timer = (reg.next_fire, key.clone());
                            reg.state = RegistrationState::Pending;
                            reg.next_fire = now;
                            self.retry_timers.remove(&timer);
                            // 8.3 Resolve promise. 8.4 If online (and pending), fire.
                            self.settle(request, Ok(Response::Registered));
                            self.try_fire(slot);
                        } else {
                            self.settle(request, Ok(Response::Registered));
                        }
                    }
                    (Ok(()), None) => self.settle(request, Err(unregistered_error(key.0))),
                    (Err(cause), _) => self.settle(request, Err(storage_error(&cause))),
                }
                self.release(key, slot);
            }
            Staged::Completion { outcome, next } => {
                let Some(Target { key, .. }) = target else {
                    return;
                };
                let Some(slot) = slot else {
                    // Removed while its write was in flight.
                    self.release(key, None);
                    return;
                };
                if let Err(cause) = result {
                    let origin = self.entry(slot).reg.origin.clone();
                    self.log_for(&key, &origin, LogEvent::StoreFailed { cause });
                }
                let kept = self.completion_committed(slot, outcome, next);
                self.release(key, kept.then_some(slot));
            }
            // Nothing to roll back or release: the registrations are already gone from memory.
            // Rows a failed removal leaves behind belong to registrations the embedder no longer
            // has (the facade removes such rows at start-up) or to a cleared origin, whose
            // caller is told to retry.
            Staged::Periodic { request, change } => {
                self.periodic_write_done(change, result.is_ok());
                match result {
                    Ok(()) => self.settle(request, Ok(Response::Registered)),
                    Err(cause) => self.settle(request, Err(storage_error(&cause))),
                }
            }
            Staged::Rewrite => {}
            Staged::Removal { request } => {
                if let Some(request) = request {
                    let result = result
                        .map(|()| Response::Cleared)
                        .map_err(|cause| storage_error(&cause));
                    self.settle(request, result);
                }
            }
        }
    }

    /// Takes the staged change `id`, and the acknowledged ones at the front of the queue.
    fn take_staged(&mut self, id: PersistId) -> Option<(Option<Target>, Staged)> {
        let at = usize::try_from(id.0.checked_sub(self.staged_base)?).ok()?;
        let taken = self.staged.get_mut(at)?.take();
        while let Some(None) = self.staged.front() {
            self.staged.pop_front();
            self.staged_base += 1;
        }
        taken
    }

    /// Carries out the end of an event once it is durable; returns whether the registration is
    /// still in `slot`.
    fn completion_committed(
        &mut self,
        slot: u32,
        outcome: DispatchOutcome,
        next: NextStep,
    ) -> bool {
        match next {
            NextStep::RetryAfter(_) => {
                let Entry { key, reg } = self.entry_mut(slot);
                reg.state = RegistrationState::Waiting;
                let timer = (reg.next_fire, key.clone());
                self.retry_timers.insert(timer);
                self.log_slot(slot, LogEvent::Completed { outcome, next });
                // A zero delay ends the wait at once.
                self.advance(self.now);
                true
            }
            NextStep::RunAgain => {
                self.entry_mut(slot).reg.state = RegistrationState::Pending;
                self.log_slot(slot, LogEvent::Completed { outcome, next });
                self.try_fire(slot);
                true
            }
            NextStep::Removed | NextStep::GaveUp => {
                let Entry { key, reg } = self.remove(slot);
                self.uncount(reg.usage, &key.1);
                self.log_for(&key, &reg.origin, LogEvent::Completed { outcome, next });
                false
            }
        }
    }

    /// Whether `key` has a change waiting for the store.
    fn is_busy(&self, key: &Key) -> bool {
        self.is_busy_hashed(key, self.hash(key))
    }

    /// [`is_busy`](Scheduler::is_busy) with the key's hash already taken.
    fn is_busy_hashed(&self, key: &Key, hash: u32) -> bool {
        match self.find(key, hash) {
            Some(slot) => self.entry(slot).reg.busy || self.busy_contains(key, hash),
            None => self.busy_contains(key, hash),
        }
    }

    fn busy_contains(&self, key: &Key, hash: u32) -> bool {
        !self.busy_keys.is_empty()
            && self
                .busy_keys
                .find(Hashed::table_hash(hash), |(h, k)| *h == hash && k == key)
                .is_some()
    }

    fn busy_insert(&mut self, key: Key, hash: u32) {
        if let hashbrown::hash_table::Entry::Vacant(slot) = self.busy_keys.entry(
            Hashed::table_hash(hash),
            |(h, k)| *h == hash && *k == key,
            |(h, _)| Hashed::table_hash(*h),
        ) {
            slot.insert((hash, key));
        }
    }

    fn busy_remove(&mut self, key: &Key, hash: u32) {
        if let Ok(entry) = self
            .busy_keys
            .find_entry(Hashed::table_hash(hash), |(h, k)| *h == hash && k == key)
        {
            entry.remove();
        }
    }

    /// The key's staged change is settled (`slot`: its registration's slot, if it has one and
    /// that is where it was marked busy): run what queued behind it, in order, until one of
    /// them stages a change of its own.
    fn release(&mut self, key: Key, slot: Option<u32>) {
        self.release_hashed(key, slot, None);
    }

    /// [`release`](Scheduler::release), with the key's hash if it was already taken.
    fn release_hashed(&mut self, key: Key, slot: Option<u32>, hash: Option<u32>) {
        match slot {
            Some(slot) => self.entry_mut(slot).reg.busy = false,
            None => {
                let hash = hash.unwrap_or_else(|| self.hash(&key));
                self.busy_remove(&key, hash);
            }
        }
        if self.deferred.is_empty() {
            return;
        }
        let Some(mut queue) = self.deferred.remove(&key) else {
            return;
        };
        while let Some(item) = queue.pop_front() {
            match item {
                Deferred::Register(request, call, seq) => {
                    if let Err(e) = self.register_steps(request, call, Some(seq), None) {
                        self.settle(request, Err(e));
                    }
                }
                Deferred::Completion(id, outcome) => {
                    if let Some(slot) = self.slot_in_flight(id) {
                        self.sync_event_settled(slot, outcome);
                    }
                }
            }
            if self.is_busy(&key) {
                self.deferred.entry(key).or_default().extend(queue);
                return;
            }
        }
    }

    /// Queues a write; the key it is about is busy until it is acknowledged.
    pub(crate) fn stage(
        &mut self,
        target: Option<Target>,
        ops: impl Into<StoreOps>,
        staged: Staged,
    ) {
        self.stage_hashed(target, None, ops, staged);
    }

    /// [`stage`](Scheduler::stage), with the target key's hash if it was already taken.
    fn stage_hashed(
        &mut self,
        target: Option<Target>,
        hash: Option<u32>,
        ops: impl Into<StoreOps>,
        staged: Staged,
    ) {
        let ops = ops.into();
        let id = PersistId(self.next_persist);
        self.next_persist += 1;
        match &target {
            Some(Target {
                slot: Some(slot), ..
            }) => self.entry_mut(*slot).reg.busy = true,
            Some(Target { key, slot: None }) => {
                let hash = hash.unwrap_or_else(|| self.hash(key));
                self.busy_insert(key.clone(), hash);
            }
            None => {}
        }
        if self.staged.is_empty() {
            self.staged_base = id.0;
        }
        self.staged.push_back(Some((target, staged)));
        self.effects.push_back(Effect::Persist { id, ops });
    }

    pub(crate) fn settle(&mut self, request: RequestId, result: Result<Response, DomException>) {
        self.effects.push_back(Effect::Settle { request, result });
    }

    /// Counts a registration of `tag` under the storage key the quotas count `sw`'s under;
    /// returns the place of that key's usage, which the registration keeps.
    fn count_origin(&mut self, sw: SwRegistrationId, origin: &Origin, tag: &Tag) -> u32 {
        let key = quota_key(&self.sw_keys, sw, origin);
        let at = match self.usage_of.get(&*key) {
            Some(&at) => at,
            None => {
                let usage = Usage {
                    count: 0,
                    bytes: 0,
                    key: Some(key.clone().into_owned()),
                };
                let at = match self.free_usages.pop() {
                    Some(at) => {
                        self.usages[at as usize] = usage;
                        at
                    }
                    None => {
                        self.usages.push(usage);
                        u32::try_from(self.usages.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                self.usage_of.insert(key.into_owned(), at);
                at
            }
        };
        self.add_usage(at, tag);
        at
    }

    /// Counts a registration of `tag` on the usage at `at`.
    fn add_usage(&mut self, at: u32, tag: &Tag) {
        let bytes = Parameters::footprint(tag);
        let usage = &mut self.usages[at as usize];
        usage.count += 1;
        usage.bytes += bytes;
        self.total_bytes += bytes;
    }

    /// Takes a registration of `tag` off the usage at `at` (where it was counted).
    fn uncount(&mut self, at: u32, tag: &Tag) {
        let bytes = Parameters::footprint(tag);
        let Some(usage) = self.usages.get_mut(at as usize) else {
            return;
        };
        usage.count = usage.count.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(bytes);
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
        if usage.count == 0 {
            if let Some(key) = usage.key.take() {
                self.usage_of.remove(&key);
                self.free_usages.push(at);
            }
        }
    }

    fn log_slot(&mut self, slot: u32, event: LogEvent) {
        let Entry { key, reg } = self.entry(slot);
        self.log.push(LogEntry {
            time: self.now,
            origin: reg.origin.clone(),
            sw: key.0,
            tag: key.1.clone(),
            event,
        });
    }

    fn log_for(&mut self, key: &Key, origin: &Origin, event: LogEvent) {
        self.log.push(LogEntry {
            time: self.now,
            origin: origin.clone(),
            sw: key.0,
            tag: key.1.clone(),
            event,
        });
    }
}

/// Where the index finds a registration: its slot, and the slot's generation when it was put
/// there.
#[derive(Debug, Clone, Copy)]
struct Place {
    slot: u32,
    generation: u32,
}

impl Place {
    /// Whether the slot still holds the registration this entry was made for.
    fn live(self, generations: &[u32]) -> bool {
        generations.get(self.slot as usize) == Some(&self.generation)
    }
}

/// A place in the key index, with its key's hash: a table that grows moves its places without
/// reading their keys (slots reused since would not hold them), and a lookup reads a key only
/// when the hashes match.
#[derive(Debug, Clone, Copy)]
struct Hashed {
    hash: u32,
    place: Place,
}

impl Hashed {
    /// The hash the table places `hash` by: its 32 bits spread over 64, as the table takes a
    /// bucket from the low bits and a tag byte from the top seven.
    fn table_hash(hash: u32) -> u64 {
        u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn rehash(&self) -> u64 {
        Hashed::table_hash(self.hash)
    }
}

/// A new dispatch id: a count in the high 32 bits (below 2^31, so that the ids a driver makes
/// for its own dispatches, from 2^63 up, are never the core's), the registration's slot in the
/// low 32, so that an outcome finds its registration without a search.
fn dispatch_id(next: &mut u64, slot: u32) -> DispatchId {
    let id = DispatchId((*next << 32) | u64::from(slot));
    *next = if *next >= (1 << 31) - 1 { 1 } else { *next + 1 };
    id
}

fn store_key(key: &Key) -> RegistrationKey {
    RegistrationKey {
        sw: key.0,
        kind: SyncKind::OneShot,
        tag: key.1.clone(),
    }
}

fn storage_error(cause: &str) -> DomException {
    DomException::new(
        DomExceptionName::UnknownError,
        format!("Background Sync could not store the registration ({cause}); try again later"),
    )
}

fn cleared_error() -> DomException {
    DomException::new(
        DomExceptionName::UnknownError,
        "Registration failed: the site's data was cleared while the registration was being stored",
    )
}

fn unregistered_error(sw: SwRegistrationId) -> DomException {
    DomException::new(
        DomExceptionName::InvalidStateError,
        format!("Registration failed: the service worker registration {sw} was unregistered"),
    )
}
