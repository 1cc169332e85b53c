// Helpers of the Periodic Background Sync spec-tests, loaded after
// /background-sync/resources/helpers.js (whose worker handles `periodicsync` too).
'use strict';

const HOUR = 60 * MINUTE;
const PERIODIC = { name: 'periodic-background-sync' };
const PERIODIC_SCOPE = '/background-sync/resources/periodic/';

// The spec-tests' worker, active, with "periodic-background-sync" granted (Chromium denies it
// until granted). When the subtest ends, every periodic registration it holds is unregistered
// and the engagement, network, window and permissions are reset.
async function periodicWorker(t, scope = PERIODIC_SCOPE) {
  const reg = await registerWorker(scope);
  await test_driver.set_permission(PERIODIC, 'granted');
  t.add_cleanup(async () => {
    await test_driver.set_permission(PERIODIC, 'granted');
    for (const tag of await reg.periodicSync.getTags()) await reg.periodicSync.unregister(tag);
    await bgsyncTest.setEngagement(location.origin, 'high');
    await resetUserAgent();
  });
  return reg;
}

// The `periodicsync` events the worker reported for `tag`.
function periodicEventsFor(tag) {
  return workerMessages.filter((m) => m.type === 'periodicsync' && m.tag === tag);
}

// Advances the clock by `ms` and returns how many `periodicsync` events `tag` has had.
async function eventsAfter(tag, ms) {
  await bgsyncTest.advanceTime(ms);
  return periodicEventsFor(tag).length;
}
