use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use bgsync_types::SwRegistrationId;

use crate::{
    RegistrationKey, RegistrationStore, ServiceWorkerIdRecord, StoreError, StoreOp,
    StoredRegistration,
};

/// A store that keeps registrations in memory: nothing survives the process.
///
/// Clones share the same contents, so a test can keep a handle and inspect what the engine
/// committed. Commits can be made to fail through a [`FaultSwitch`] to test storage-failure paths.
#[derive(Clone, Default, Debug)]
pub struct MemoryStore {
    records: Arc<Mutex<BTreeMap<RegistrationKey, StoredRegistration>>>,
    faults: FaultSwitch,
    commits: Arc<AtomicU32>,
    ids: Arc<Mutex<BTreeMap<(String, String), SwRegistrationId>>>,
}

/// Makes the next commits of a [`MemoryStore`] fail, as a full disk would.
#[derive(Clone, Default, Debug)]
pub struct FaultSwitch(Arc<AtomicU32>);

impl FaultSwitch {
    /// The next `n` commits fail with [`StoreError::WriteFailed`].
    pub fn fail_next_commits(&self, n: u32) {
        self.0.store(n, Ordering::SeqCst);
    }

    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// The switch that injects commit failures into this store.
    pub fn faults(&self) -> FaultSwitch {
        self.faults.clone()
    }

    /// A copy of the current contents, in key order.
    pub fn snapshot(&self) -> Vec<StoredRegistration> {
        self.records.lock().values().cloned().collect()
    }

    /// How many commits succeeded so far (each is one transaction).
    pub fn commit_count(&self) -> u32 {
        self.commits.load(Ordering::SeqCst)
    }
}

impl RegistrationStore for MemoryStore {
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, StoreError> {
        Ok(self.snapshot())
    }

    fn load_service_worker_ids(&mut self) -> Result<Vec<ServiceWorkerIdRecord>, StoreError> {
        Ok(self
            .ids
            .lock()
            .iter()
            .map(|((key, scope), id)| ServiceWorkerIdRecord {
                key: key.clone(),
                scope: scope.clone(),
                id: *id,
            })
            .collect())
    }

    fn commit(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        if self.faults.take() {
            return Err(StoreError::WriteFailed {
                ops: batch.len(),
                cause: "injected fault: no space left on device".to_owned(),
            });
        }
        let mut records = self.records.lock();
        for op in batch {
            match op {
                StoreOp::Put(r) => {
                    records.insert(r.key(), r.clone());
                }
                StoreOp::Delete(key) => {
                    records.remove(key);
                }
                StoreOp::DeleteServiceWorker(sw) => records.retain(|k, _| k.sw != *sw),
                StoreOp::DeleteOrigin(origin) => records.retain(|_, r| r.origin != *origin),
                StoreOp::DeleteStorageKey(key) => {
                    records.retain(|_, r| r.origin != key.origin || r.partition != key.partition)
                }
                StoreOp::DeleteAll => records.clear(),
                StoreOp::PutServiceWorkerId(r) => {
                    self.ids
                        .lock()
                        .insert((r.key.clone(), r.scope.clone()), r.id);
                }
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};

    fn record(origin: &str, sw: u64, tag: &str) -> StoredRegistration {
        StoredRegistration {
            origin: Origin::parse(origin).unwrap(),
            partition: Default::default(),
            seq: 0,
            sw: SwRegistrationId(sw),
            tag: Tag::from(tag),
            kind: SyncKind::OneShot,
            attempts: 0,
            max_attempts: 3,
            next_fire: Timestamp(0),
            periodic_interval: None,
        }
    }

    #[test]
    fn put_replaces_and_delete_removes() {
        let mut store = MemoryStore::new();
        let mut a = record("https://a.example", 1, "x");
        store.commit(&[StoreOp::Put(a.clone())]).unwrap();
        a.attempts = 2;
        store.commit(&[StoreOp::Put(a.clone())]).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![a.clone()]);
        store.commit(&[StoreOp::Delete(a.key())]).unwrap();
        assert!(store.load_all().unwrap().is_empty());
        assert_eq!(store.commit_count(), 3);
    }

    #[test]
    fn one_shot_and_periodic_share_a_tag_without_clashing() {
        let mut store = MemoryStore::new();
        let a = record("https://a.example", 1, "x");
        let mut p = a.clone();
        p.kind = SyncKind::Periodic;
        store
            .commit(&[StoreOp::Put(a.clone()), StoreOp::Put(p.clone())])
            .unwrap();
        assert_eq!(store.load_all().unwrap().len(), 2);
    }

    #[test]
    fn bulk_deletes_touch_only_their_scope() {
        let mut store = MemoryStore::new();
        let a1 = record("https://a.example", 1, "x");
        let a2 = record("https://a.example", 2, "y");
        let b = record("https://b.example", 3, "x");
        store
            .commit(&[
                StoreOp::Put(a1.clone()),
                StoreOp::Put(a2.clone()),
                StoreOp::Put(b.clone()),
            ])
            .unwrap();
        store
            .commit(&[StoreOp::DeleteServiceWorker(SwRegistrationId(1))])
            .unwrap();
        assert_eq!(store.snapshot(), vec![a2.clone(), b.clone()]);
        store
            .commit(&[StoreOp::DeleteOrigin(a2.origin.clone())])
            .unwrap();
        assert_eq!(store.snapshot(), vec![b]);
    }

    #[test]
    fn a_failed_commit_applies_nothing_and_keeps_what_was_there() {
        let mut store = MemoryStore::new();
        let a = record("https://a.example", 1, "x");
        store.commit(&[StoreOp::Put(a.clone())]).unwrap();
        store.faults().fail_next_commits(1);
        let err = store
            .commit(&[
                StoreOp::Put(record("https://a.example", 1, "y")),
                StoreOp::Delete(a.key()),
            ])
            .unwrap_err();
        assert!(
            err.to_string().contains("2 registration change(s)"),
            "{err}"
        );
        assert_eq!(store.snapshot(), vec![a.clone()]);
        // The fault was one-shot: the store serves writes again.
        store.commit(&[StoreOp::Delete(a.key())]).unwrap();
        assert!(store.snapshot().is_empty());
    }
}
