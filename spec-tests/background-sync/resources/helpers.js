// Helpers of the Background Sync spec-tests (window globals).
'use strict';

const MINUTE = 60 * 1000;
const SW_URL = '/background-sync/resources/sw.js';

// Every message the workers post to this page, in order.
const workerMessages = [];
navigator.serviceWorker.addEventListener('message', (e) => workerMessages.push(e.data));

const registrations = new Map();
// Registers the spec-tests worker for `scope` (once per file) and waits until it is active.
function registerWorker(scope = '/background-sync/resources/scope/') {
  if (!registrations.has(scope)) {
    registrations.set(scope, navigator.serviceWorker.register(SW_URL, { scope }).then((reg) => new Promise((resolve) => {
      const worker = reg.installing || reg.waiting || reg.active;
      if (worker.state === 'activated') { resolve(reg); return; }
      worker.addEventListener('statechange', () => { if (worker.state === 'activated') resolve(reg); });
    })));
  }
  return registrations.get(scope);
}

// The sync events the worker reported for `tag`.
function syncEventsFor(tag) {
  return workerMessages.filter((m) => m.type === 'sync' && m.tag === tag);
}

// The engine's log entries for `tag`, optionally of one type.
async function logFor(tag, type) {
  const log = await bgsyncTest.log();
  return log.filter((e) => e.tag === tag && (type === undefined || e.type === type));
}

// A tag no other subtest of the file uses.
let tagCounter = 0;
function uniqueTag(prefix = '') {
  tagCounter += 1;
  return `${prefix}t${tagCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

// Resets what a subtest may have changed.
async function resetUserAgent() {
  await bgsyncTest.setOnline(true);
  await bgsyncTest.setWindowClient(true);
  await test_driver.set_permission({ name: 'background-sync' }, 'granted');
}

// Lets the engine dispatch what is due now, without waiting for events in flight to finish
// (bgsyncTest.idle() waits for those, which never happens while a 'hang-' event runs).
function settle() {
  return bgsyncTest.advanceTime(0);
}

// A subtest across a user-agent restart, in two halves: `before(t)` runs, the user agent
// restarts, then `after(t, state)` runs with what `before` returned (a JSON value). A driver
// that restarts a real browser by relaunching it (cargo xtask chromium) runs the halves in two
// launches sharing one profile, through `bgsyncTest.splitRestart`.
function restartTest(before, after, name) {
  if (typeof bgsyncTest.splitRestart === 'function') {
    bgsyncTest.splitRestart(before, after, name);
    return;
  }
  promise_test(async (t) => {
    const state = await before(t);
    await bgsyncTest.restart();
    await after(t, state);
  }, name);
}
