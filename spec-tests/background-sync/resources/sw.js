// The service worker of the Background Sync spec-tests. How it settles a `sync` event depends
// on the tag's prefix:
//   reject-…  waitUntil() with a promise that rejects
//   throw-…   the listener throws
//   hang-…    waitUntil() with a promise that never settles
//   slow-…    waitUntil() with a promise that fulfils after 20 ms of real time
//   anything else: waitUntil() with a promise that fulfils at once
// Every event is reported to the pages of the origin as {type: 'sync', …} (or 'periodicsync').
self.addEventListener('install', (e) => e.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (e) => e.waitUntil(Promise.resolve()));

async function report(data) {
  const clients = await self.clients.matchAll({ includeUncontrolled: true });
  for (const c of clients) c.postMessage(data);
}

self.addEventListener('sync', (e) => {
  report({
    type: 'sync',
    tag: e.tag,
    lastChance: e.lastChance,
    isTrusted: e.isTrusted,
    isSyncEvent: e instanceof SyncEvent,
    isExtendableEvent: e instanceof ExtendableEvent,
    scope: self.registration.scope,
  });
  const tag = e.tag;
  if (tag.startsWith('throw-')) throw new Error('the handler threw');
  if (tag.startsWith('reject-')) e.waitUntil(Promise.reject(new Error('the server is down')));
  else if (tag.startsWith('hang-')) e.waitUntil(new Promise(() => {}));
  else if (tag.startsWith('slow-')) e.waitUntil(new Promise((r) => setTimeout(r, 20)));
  else e.waitUntil(Promise.resolve());
});

// A `periodicsync` event settles as a `sync` event with the same tag prefix would, and is
// reported as {type: 'periodicsync', …}.
self.addEventListener('periodicsync', (e) => {
  report({
    type: 'periodicsync',
    tag: e.tag,
    isTrusted: e.isTrusted,
    isPeriodicSyncEvent: e instanceof PeriodicSyncEvent,
    isExtendableEvent: e instanceof ExtendableEvent,
    hasLastChance: 'lastChance' in e,
    scope: self.registration.scope,
    time: Date.now(),
  });
  const tag = e.tag;
  if (tag.startsWith('throw-')) throw new Error('the handler threw');
  if (tag.startsWith('reject-')) e.waitUntil(Promise.reject(new Error('the server is down')));
  else if (tag.startsWith('hang-')) e.waitUntil(new Promise(() => {}));
  else e.waitUntil(Promise.resolve());
});

// register() called by the worker itself, `ms` after a page asks (so that the page can close
// first); the outcome ('ok' or the exception's name) is kept for a later 'result' message.
const registered = new Map();

self.addEventListener('message', (e) => {
  if (e.data === 'ping') e.source.postMessage({ type: 'pong', scope: self.registration.scope });
  if (e.data && e.data.type === 'register-after') {
    const { tag, ms } = e.data;
    setTimeout(() => {
      self.registration.sync.register(tag).then(
        () => registered.set(tag, 'ok'),
        (err) => registered.set(tag, err.name));
    }, ms);
  }
  if (e.data && e.data.type === 'result') {
    e.source.postMessage({ type: 'result', tag: e.data.tag, result: registered.get(e.data.tag) || 'none' });
  }
});
