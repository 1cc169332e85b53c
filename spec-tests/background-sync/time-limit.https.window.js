// META: title=The sync event's time limit
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// A user agent may limit the time a sync event runs (Chromium: 3 minutes); past it the attempt
// counts as failed.

let tag;
promise_setup(async () => {
  const reg = await registerWorker();
  tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  await settle();
});

promise_test(async () => {
  await bgsyncTest.advanceTime(3 * MINUTE - 1);
  assert_equals((await logFor(tag, 'completed')).length, 0);
}, 'an event is still running 1 ms before 3 minutes');

promise_test(async () => {
  await bgsyncTest.advanceTime(1);
  const completed = await logFor(tag, 'completed');
  assert_equals(completed.length, 1);
  assert_equals(completed[0].outcome, 'timeout');
}, 'at 3 minutes the attempt times out');

promise_test(async () => {
  const [first] = await logFor(tag, 'dispatched');
  await bgsyncTest.advanceTime(5 * MINUTE);
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 2);
  assert_equals(dispatched[1].time - first.time, 8 * MINUTE, 'back-off from the end of the attempt');
}, 'the retry comes 5 minutes after the time-out');
