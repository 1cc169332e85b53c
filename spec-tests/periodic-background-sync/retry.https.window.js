// META: title=What a periodicsync event's outcome does
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=/background-sync/resources/helpers.js
// META: script=resources/periodic.js
'use strict';

// Chromium: a failed periodicsync event retries with the one-shot back-off (5 min, then 15 min
// after the end of the failed attempt); after the last retry, or on success, the registration
// goes back on its interval from that moment. No outcome removes it.

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('reject-');
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 12 * HOUR), 1);
  await settle();
  assert_equals(await eventsAfter(tag, 5 * MINUTE - 1), 1, 'no retry before 5 minutes');
  assert_equals(await eventsAfter(tag, 1), 2, 'the first retry at 5 minutes');
  await settle();
  assert_equals(await eventsAfter(tag, 15 * MINUTE - 1), 2, 'no second retry before 15 minutes');
  assert_equals(await eventsAfter(tag, 1), 3, 'the second retry at 15 minutes');
  await settle();
  assert_equals(await eventsAfter(tag, 12 * HOUR - 1), 3, 'retries exhausted: nothing until the interval');
  assert_equals(await eventsAfter(tag, 1), 4, 'the next round, 12 h after the last attempt');
  assert_array_equals(await reg.periodicSync.getTags(), [tag], 'failures never remove it');
}, 'a rejected waitUntil retries after 5 and 15 minutes, then the registration waits for its interval');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('throw-');
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 12 * HOUR), 1);
  await settle();
  assert_equals(await eventsAfter(tag, 15 * MINUTE), 1, 'no retry: a listener that throws is not a failure');
  const log = await logFor(tag, 'periodic-completed');
  assert_equals(log[0].outcome, 'fulfilled');
}, 'a listener that throws without a rejected waitUntil counts as success');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('hang-');
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 12 * HOUR), 1);
  await bgsyncTest.advanceTime(3 * MINUTE);
  const done = await logFor(tag, 'periodic-completed');
  assert_equals(done.length, 1, 'the event ended at its time limit');
  assert_equals(done[0].outcome, 'timeout');
  assert_equals(await eventsAfter(tag, 5 * MINUTE - 1), 1);
  assert_equals(await eventsAfter(tag, 1), 2, 'and is retried 5 minutes later');
}, 'a periodicsync event has the 3-minute time limit; past it the attempt failed');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('ok-');
  await reg.periodicSync.register(tag);
  await bgsyncTest.advanceTime(12 * HOUR);
  await bgsyncTest.idle();
  const log = await logFor(tag);
  assert_array_equals(log.map((e) => e.type), ['periodic-registered', 'periodic-dispatched', 'periodic-completed']);
  assert_equals(log[2].outcome, 'fulfilled');
  assert_equals(log[1].time - log[0].time, 12 * HOUR);
}, 'the log records registration, dispatch and completion of periodic events');

promise_test(async (t) => {
  const reg = await periodicWorker(t);
  const tag = uniqueTag('hang-rereg-');
  await reg.periodicSync.register(tag);
  assert_equals(await eventsAfter(tag, 12 * HOUR), 1);
  await reg.periodicSync.register(tag);
  await bgsyncTest.advanceTime(3 * MINUTE);
  assert_equals(await eventsAfter(tag, 15 * MINUTE), 1,
    're-registered while firing: back on its interval, not retried');
  assert_equals(await eventsAfter(tag, 12 * HOUR - 15 * MINUTE - 1), 1);
  assert_equals(await eventsAfter(tag, 1), 2, 'the next round, 12 h after the event ended');
}, 'register() while its event is in flight puts it back on its interval when the event ends');
