// META: title=Periodic registrations across restarts, and what removes them
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=/background-sync/resources/helpers.js
// META: script=resources/periodic.js
'use strict';

restartTest(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('durable-');
  await reg.periodicSync.register(tag, { minInterval: 13 * HOUR });
  await bgsyncTest.advanceTime(10 * HOUR);
  return { tag };
}, async (t, { tag }) => {
  const reg = await periodicWorker(t);
  assert_array_equals(await reg.periodicSync.getTags(), [tag], 'it survives the restart');
  assert_equals(await eventsAfter(tag, 14 * HOUR - 1), 0, 'its next fire time is kept: 24 h from registration');
  assert_equals(await eventsAfter(tag, 1), 1);
}, 'a periodic registration survives a restart with its next fire time');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('revoked-');
  await reg.periodicSync.register(tag);
  await test_driver.set_permission(PERIODIC, 'denied');
  assert_array_equals(await reg.periodicSync.getTags(), [], 'revoking the permission removes it');
  await test_driver.set_permission(PERIODIC, 'granted');
  assert_equals(await eventsAfter(tag, 24 * HOUR), 0, 'and it never fires');
}, 'revoking "periodic-background-sync" removes the origin\'s periodic registrations (Chromium)');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('cleared-');
  await reg.periodicSync.register(tag);
  await bgsyncTest.clearSiteData(location.origin);
  assert_array_equals(await reg.periodicSync.getTags(), [], 'clearing the site\'s data removes it');
  assert_equals(await eventsAfter(tag, 24 * HOUR), 0);
}, 'clear-site-data removes periodic registrations');

promise_test(async (t) => {
  const scope = '/background-sync/resources/periodic-unregistered/';
  const reg = await periodicWorker(t, scope);
  const tag = uniqueTag('sw-gone-');
  await reg.periodicSync.register(tag);
  await reg.unregister();
  assert_equals(await eventsAfter(tag, 24 * HOUR), 0, 'no event for an unregistered worker');
  const again = await registerWorker('/background-sync/resources/periodic-unregistered-2/');
  assert_array_equals(await again.periodicSync.getTags(), []);
}, 'unregistering the service worker registration removes its periodic registrations');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('restart-in-flight-');
  await reg.periodicSync.register(tag);
  await bgsyncTest.setOnline(false);
  await bgsyncTest.advanceTime(12 * HOUR);
  await bgsyncTest.restart();
  await bgsyncTest.setOnline(true);
  await bgsyncTest.idle();
  assert_equals(periodicEventsFor(tag).length, 1, 'due while offline and across the restart: fires once online');
}, 'a periodic registration due during a restart fires once online again');
