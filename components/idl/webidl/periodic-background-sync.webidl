// Web Periodic Background Synchronization
// https://wicg.github.io/periodic-background-sync/#api-description
// PeriodicSyncManager carries [SecureContext], as Chromium ships it (as SyncManager does).

partial interface ServiceWorkerGlobalScope {
  attribute EventHandler onperiodicsync;
};

[Exposed=(Window,Worker)]
partial interface ServiceWorkerRegistration {
  readonly attribute PeriodicSyncManager periodicSync;
};

[Exposed=(Window,Worker), SecureContext]
interface PeriodicSyncManager {
  Promise<undefined> register(DOMString tag, optional BackgroundSyncOptions options = {});
  Promise<sequence<DOMString>> getTags();
  Promise<undefined> unregister(DOMString tag);
};

dictionary BackgroundSyncOptions {
  [EnforceRange] unsigned long long minInterval = 0;
};

dictionary PeriodicSyncEventInit : ExtendableEventInit {
  required DOMString tag;
};

[Exposed=ServiceWorker]
interface PeriodicSyncEvent : ExtendableEvent {
  constructor(DOMString type, PeriodicSyncEventInit init);
  readonly attribute DOMString tag;
};
