// META: title=User-agent restarts
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// Registrations are durable: a restart keeps them; an attempt cut short by a restart is not a
// failed attempt.

restartTest(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tag = uniqueTag();
  await reg.sync.register(tag);
  return tag;
}, async (t, tag) => {
  const reg = await registerWorker();
  assert_true((await reg.sync.getTags()).includes(tag), 'still registered');
  await bgsyncTest.setOnline(true);
  await settle();
  assert_equals((await logFor(tag, 'completed'))[0].outcome, 'fulfilled');
}, 'a pending registration survives a restart and fires after it');

restartTest(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  await settle();
  return tag;
}, async (t, tag) => {
  await settle();
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals((await logFor(tag, 'completed')).length, 0, 'the lost attempt completed nowhere');
  assert_equals(dispatched.length, 2, 'fired again after the restart');
  assert_false(dispatched[1].lastChance);
}, 'an event in flight at a restart fires again without counting an attempt');

restartTest(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('reject-');
  await reg.sync.register(tag);
  await settle();
  return tag;
}, async (t, tag) => {
  await bgsyncTest.advanceTime(5 * MINUTE - 1);
  assert_equals((await logFor(tag, 'dispatched')).length, 1, 'the back-off survived the restart');
  await bgsyncTest.advanceTime(1);
  await settle();
  assert_equals((await logFor(tag, 'dispatched')).length, 2);
}, 'a back-off survives a restart');

restartTest(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  // Two attempts run out of time (3 min each), with back-offs of 5 and 15 min between.
  await bgsyncTest.advanceTime(3 * MINUTE);
  await bgsyncTest.advanceTime(5 * MINUTE);
  await bgsyncTest.advanceTime(3 * MINUTE);
  await bgsyncTest.advanceTime(15 * MINUTE);
  let dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 3);
  assert_true(dispatched[2].lastChance, 'the third attempt is the last chance');
  // Re-registered while firing, then the user agent restarts before the event completes. The
  // spec has no attempt count; as Chromium, the attempts are reset when the event completes,
  // so this restart keeps them: the event runs again, still the last chance.
  await reg.sync.register(tag);
  return tag;
}, async (t, tag) => {
  await settle();
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 4, 'fired again after the restart');
  assert_true(dispatched[3].lastChance, 'the attempts were not reset: the event never completed');
}, 're-registered while firing, then a restart before it completes: the attempts are kept');

promise_test(async () => {
  const log = await bgsyncTest.log();
  for (let i = 1; i < log.length; i++) assert_greater_than_equal(log[i].time, log[i - 1].time, `entry ${i}`);
}, 'the log is kept, in time order, across restarts');
