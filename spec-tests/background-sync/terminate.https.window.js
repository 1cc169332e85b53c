// META: title=The worker terminated mid-event
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

let tag;
promise_setup(async () => {
  const reg = await registerWorker();
  tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  await settle();
});

promise_test(async () => {
  await bgsyncTest.terminateWorker();
  const completed = await logFor(tag, 'completed');
  assert_equals(completed.length, 1);
  assert_equals(completed[0].outcome, 'terminated');
}, 'terminating the worker fails the event in flight');

promise_test(async () => {
  const reg = await registerWorker();
  assert_true((await reg.sync.getTags()).includes(tag), 'the registration waits to retry');
  await bgsyncTest.advanceTime(5 * MINUTE);
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 2, 'retried by a fresh worker');
  assert_false(dispatched[1].lastChance);
}, 'the retry starts the worker again');

promise_test(async () => {
  const reg = await registerWorker();
  const other = uniqueTag();
  await reg.sync.register(other);
  await settle();
  assert_equals(syncEventsFor(other).length, 1, 'the restarted worker handles new events');
}, 'the restarted worker receives new events');
