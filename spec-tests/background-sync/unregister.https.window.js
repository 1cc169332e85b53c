// META: title=The service worker registration unregistered
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

promise_test(async (t) => {
  const reg = await registerWorker('/background-sync/resources/unregistered/');
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await reg.sync.register(uniqueTag());
  assert_true(await reg.unregister());
  assert_array_equals(await reg.sync.getTags(), []);
}, 'unregistering drops the sync registrations');

promise_test(async () => {
  const reg = await registerWorker('/background-sync/resources/unregistered-mid-event/');
  const tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  await settle();
  assert_true(await reg.unregister());
  await bgsyncTest.advanceTime(60 * MINUTE);
  assert_equals((await logFor(tag, 'dispatched')).length, 1, 'no retry');
  assert_equals((await logFor(tag, 'completed')).length, 0, 'the outcome was ignored');
}, 'an event in flight when its registration goes is ignored');

promise_test(async (t) => {
  const reg = await registerWorker('/background-sync/resources/unregistered/');
  await promise_rejects_dom(t, 'InvalidStateError', reg.sync.register(uniqueTag()));
}, 'register() after unregistering rejects with InvalidStateError');
