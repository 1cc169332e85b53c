// META: title=PeriodicSyncManager.register(), unregister() and getTags()
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=/background-sync/resources/helpers.js
// META: script=resources/periodic.js
'use strict';

// https://wicg.github.io/periodic-background-sync/#periodicsyncmanager-interface

promise_test(async (t) => {
  // The first subtest of the file: nothing has granted the permission yet.
  t.add_cleanup(resetUserAgent);
  assert_equals((await navigator.permissions.query(PERIODIC)).state, 'denied');
  const reg = await registerWorker(PERIODIC_SCOPE);
  await promise_rejects_dom(t, 'NotAllowedError', reg.periodicSync.register(uniqueTag()));
}, '"periodic-background-sync" is denied until granted (Chromium)');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  assert_equals(reg.periodicSync, reg.periodicSync, 'the same PeriodicSyncManager each time');
  assert_class_string(reg.periodicSync, 'PeriodicSyncManager');
  assert_equals(await reg.periodicSync.register(uniqueTag()), undefined, 'register() resolves with undefined');
}, 'ServiceWorkerRegistration.periodicSync is one PeriodicSyncManager; register() resolves with undefined');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  await reg.periodicSync.register('p-b');
  await reg.periodicSync.register('p-a', { minInterval: 5 * HOUR });
  await reg.periodicSync.register('p-b', { minInterval: 30 * HOUR });
  assert_array_equals(await reg.periodicSync.getTags(), ['p-b', 'p-a'],
    'each tag once, in the order they were first registered');
}, 'getTags() lists each tag once, in registration order');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  await reg.periodicSync.register('gone');
  await reg.periodicSync.register('stays');
  assert_equals(await reg.periodicSync.unregister('gone'), undefined);
  assert_array_equals(await reg.periodicSync.getTags(), ['stays']);
  await reg.periodicSync.unregister('never-registered');
  assert_array_equals(await reg.periodicSync.getTags(), ['stays'], 'an unknown tag resolves and changes nothing');
}, 'unregister() removes the tag, and resolves for a tag that is not registered');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  await bgsyncTest.setOnline(false);
  await reg.periodicSync.register('both-kinds');
  await reg.sync.register('both-kinds');
  assert_array_equals(await reg.periodicSync.getTags(), ['both-kinds']);
  assert_array_equals(await reg.sync.getTags(), ['both-kinds']);
  await reg.periodicSync.unregister('both-kinds');
  assert_array_equals(await reg.sync.getTags(), ['both-kinds'], 'unregistering the periodic one leaves the one-shot one');
}, 'one-shot and periodic registrations are separate namespaces');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  for (const bad of [-1, NaN, Infinity, -Infinity, Number.MAX_SAFE_INTEGER + 2, 'x']) {
    await promise_rejects_js(t, TypeError, reg.periodicSync.register(uniqueTag(), { minInterval: bad }), `minInterval ${bad}`);
  }
  await promise_rejects_js(t, TypeError, reg.periodicSync.register(uniqueTag(), 5), 'options must be a dictionary');
  await reg.periodicSync.register(uniqueTag('trunc-'), { minInterval: 1.9 });
  await reg.periodicSync.register(uniqueTag('string-'), { minInterval: '3600000' });
  await reg.periodicSync.register(uniqueTag('null-'), null);
  await reg.periodicSync.register(uniqueTag('undef-'), { minInterval: undefined });
  assert_equals((await reg.periodicSync.getTags()).length, 4, 'the valid ones registered');
}, 'minInterval is an [EnforceRange] unsigned long long: out of range or not finite is a TypeError');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  for (const state of ['prompt', 'denied']) {
    await test_driver.set_permission(PERIODIC, state);
    assert_equals((await navigator.permissions.query(PERIODIC)).state, state);
    await promise_rejects_dom(t, 'NotAllowedError', reg.periodicSync.register(uniqueTag()), `with ${state}`);
  }
  await test_driver.set_permission(PERIODIC, 'granted');
  assert_equals((await navigator.permissions.query(PERIODIC)).state, 'granted');
  await reg.periodicSync.register(uniqueTag());
}, 'register() needs "periodic-background-sync" granted: otherwise NotAllowedError');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  await bgsyncTest.setWindowClient(false);
  await promise_rejects_dom(t, 'InvalidAccessError', reg.periodicSync.register(uniqueTag()));
}, 'register() without a top-level window client rejects with InvalidAccessError (Chromium)');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const limit = 10240;
  await reg.periodicSync.register('x'.repeat(limit));
  await promise_rejects_dom(t, 'InvalidAccessError', reg.periodicSync.register('x'.repeat(limit + 1)));
  assert_equals((await reg.periodicSync.getTags()).length, 1);
}, 'a tag of 10,240 bytes of UTF-8 registers; one byte more is an InvalidAccessError');

promise_test(async (t) => {
  await test_driver.set_permission(PERIODIC, 'granted');
  t.add_cleanup(resetUserAgent);
  const reg = await navigator.serviceWorker.register(SW_URL, { scope: '/background-sync/resources/periodic-inactive/' });
  t.add_cleanup(() => reg.unregister());
  assert_equals(reg.active, null, 'not yet active');
  await promise_rejects_dom(t, 'InvalidStateError', reg.periodicSync.register(uniqueTag()));
  await reg.periodicSync.unregister('anything');
}, 'register() without an active worker rejects with InvalidStateError; unregister() resolves');
