// META: title=When periodicsync events fire: intervals, engagement, coalescing, the network
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=/background-sync/resources/helpers.js
// META: script=resources/periodic.js
'use strict';

// Chromium's schedule (docs/testing.md): an interval snaps up to a multiple of
// (engagement penalty × 12 h): 1 for high, 2 for medium and low, 3 for minimal; no engagement
// suspends. Nothing fires at registration. An origin's due registrations fire together, at
// most one round per 12 h.

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('first-');
  const at = Date.now();
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 0), 0, 'no event at registration');
  assert_equals(await eventsAfter(tag, 12 * HOUR - 1), 0, 'none 1 ms before 12 h');
  assert_equals(await eventsAfter(tag, 1), 1, 'one at 12 h');
  const [e] = periodicEventsFor(tag);
  assert_equals(e.time - at, 12 * HOUR, 'dispatched exactly 12 h after registration');
  assert_true(e.isPeriodicSyncEvent && e.isExtendableEvent && e.isTrusted, 'a trusted PeriodicSyncEvent');
  assert_false(e.hasLastChance, 'a PeriodicSyncEvent has no lastChance');
}, 'with minInterval 0 the first event comes 12 h after registration, not before');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('again-');
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 12 * HOUR), 1);
  await bgsyncTest.idle();
  assert_equals(await eventsAfter(tag, 12 * HOUR - 1), 1, 'not again before 12 h from the last event');
  assert_equals(await eventsAfter(tag, 1), 2, 'again at 12 h');
  assert_array_equals(await reg.periodicSync.getTags(), [tag], 'a fired registration stays');
}, 'it fires again one interval after the last event, and stays registered');

for (const [level, asked, expected] of [
  ['high', 13 * HOUR, 24 * HOUR],
  ['high', 24 * HOUR, 24 * HOUR],
  ['medium', 13 * HOUR, 24 * HOUR],
  ['low', 25 * HOUR, 48 * HOUR],
  ['minimal', 1, 36 * HOUR],
]) {
  promise_test(async (t) => {
    const reg = await periodicWorker(t);
    await bgsyncTest.setEngagement(location.origin, level);
    const tag = uniqueTag(`${level}-`);
    await reg.periodicSync.register(tag, { minInterval: asked });
    assert_equals(await eventsAfter(tag, expected - 1), 0, 'not before');
    assert_equals(await eventsAfter(tag, 1), 1, 'at the snapped interval');
  }, `${level} engagement: minInterval ${asked / HOUR} h fires after ${expected / HOUR} h (Chromium)`);
}

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const a = uniqueTag('round-a-');
  const b = uniqueTag('round-b-');
  const c = uniqueTag('round-c-');
  await reg.periodicSync.register(a, { minInterval: 12 * HOUR });
  await reg.periodicSync.register(b, { minInterval: 24 * HOUR });
  await reg.periodicSync.register(c, { minInterval: 48 * HOUR });
  await bgsyncTest.advanceTime(12 * HOUR);
  assert_equals(periodicEventsFor(a).length, 1);
  assert_equals(periodicEventsFor(b).length, 1, 'due within 12 h: it comes with the round');
  assert_equals(periodicEventsFor(c).length, 0, 'due later than 12 h: it waits');
}, 'an origin\'s registrations due within 12 h of a round fire with it (Chromium)');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  await bgsyncTest.setEngagement(location.origin, 'none');
  const tag = uniqueTag('suspended-');
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 7 * 24 * HOUR), 0, 'no engagement: nothing fires, for a week');
  assert_array_equals(await reg.periodicSync.getTags(), [tag], 'suspended, not removed');
  await bgsyncTest.setEngagement(location.origin, 'high');
  assert_equals(await eventsAfter(tag, 0), 1, 'engagement back: it fires, long overdue');
}, 'without engagement registrations are suspended, and revived when it returns (Chromium)');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('offline-');
  await reg.periodicSync.register(tag);
  await bgsyncTest.setOnline(false);
  assert_equals(await eventsAfter(tag, 20 * HOUR), 0, 'offline: held');
  await bgsyncTest.setOnline(true);
  await bgsyncTest.idle();
  assert_equals(periodicEventsFor(tag).length, 1, 'online: fires');
}, 'events fire only while online');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('stopped-');
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 12 * HOUR), 1);
  await reg.periodicSync.unregister(tag);
  assert_equals(await eventsAfter(tag, 48 * HOUR), 1, 'no event after unregister()');
}, 'unregister() stops future events');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('changed-');
  await reg.periodicSync.register(tag, { minInterval: 36 * HOUR });
  await reg.periodicSync.register(tag, { minInterval: 12 * HOUR });
  assert_equals(await eventsAfter(tag, 12 * HOUR), 1, 're-registering with another minInterval changes the schedule');
}, 'register() again with another minInterval updates it');
