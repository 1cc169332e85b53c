// META: title=Retries: back-off and lastChance
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// https://wicg.github.io/background-sync/spec/#fire-a-sync-event (step 5), with Chromium's
// parameters: 3 attempts, 5 minutes then 15 minutes after the end of the failed attempt.
// One registration walks the whole timeline; each subtest checks one edge.

let tag;
let start;
promise_setup(async () => {
  const reg = await registerWorker();
  tag = uniqueTag('reject-');
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  start = (await logFor(tag, 'dispatched'))[0].time;
});

promise_test(async () => {
  await bgsyncTest.advanceTime(5 * MINUTE - 1);
  assert_equals((await logFor(tag, 'dispatched')).length, 1);
}, 'no retry 1 ms before 5 minutes');

promise_test(async () => {
  await bgsyncTest.advanceTime(1);
  await bgsyncTest.idle();
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 2);
  assert_equals(dispatched[1].time - start, 5 * MINUTE);
  assert_false(dispatched[1].lastChance);
}, 'the second attempt comes at exactly 5 minutes, lastChance false');

promise_test(async () => {
  await bgsyncTest.advanceTime(15 * MINUTE - 1);
  assert_equals((await logFor(tag, 'dispatched')).length, 2);
}, 'no retry 1 ms before a further 15 minutes');

promise_test(async () => {
  await bgsyncTest.advanceTime(1);
  await bgsyncTest.idle();
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 3);
  assert_equals(dispatched[2].time - start, 20 * MINUTE);
  assert_true(dispatched[2].lastChance);
  assert_array_equals(syncEventsFor(tag).map((e) => e.lastChance), [false, false, true], 'as the worker saw it');
}, 'the third attempt comes 15 minutes later with lastChance true');

promise_test(async () => {
  const reg = await registerWorker();
  assert_false((await reg.sync.getTags()).includes(tag));
  await bgsyncTest.advanceTime(24 * 60 * MINUTE);
  assert_equals((await logFor(tag, 'dispatched')).length, 3, 'never a fourth');
}, 'after the last chance fails the registration is gone');

promise_test(async () => {
  const outcomes = (await logFor(tag, 'completed')).map((e) => e.outcome);
  assert_array_equals(outcomes, ['rejected', 'rejected', 'rejected']);
}, 'each attempt completed as rejected');
