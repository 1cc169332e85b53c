// META: title=Registering again while firing or waiting
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// https://wicg.github.io/background-sync/spec/#dom-syncmanager-register (step 8)

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  await reg.sync.register(tag);
  // The first attempt runs out of time; the re-registration makes it run again at once,
  // without a back-off, with its attempts reset.
  await bgsyncTest.advanceTime(3 * MINUTE);
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 2, 'runs again');
  assert_equals(dispatched[1].time, dispatched[0].time + 3 * MINUTE, 'at once');
  assert_false(dispatched[1].lastChance, 'attempts reset');
  assert_equals((await logFor(tag, 'reregistered')).length, 1);
}, 'register() while firing runs the event once more, at once');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  await reg.sync.register(tag);
  await bgsyncTest.advanceTime(3 * MINUTE);
  await bgsyncTest.advanceTime(3 * MINUTE);
  // The second run failed (time limit) without a re-registration: now it backs off.
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 2);
  await bgsyncTest.advanceTime(5 * MINUTE);
  assert_equals((await logFor(tag, 'dispatched')).length, 3);
}, 'after the extra run, failures back off as usual');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('reject-');
  await reg.sync.register(tag);
  await settle();
  await bgsyncTest.advanceTime(MINUTE);
  // Step 8.1: a waiting registration becomes pending, and 8.4 fires it, being online. (Chromium
  // keeps the back-off instead: docs/chromium.md.)
  await reg.sync.register(tag);
  await settle();
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 2, 're-registering fired it at once');
  assert_equals(dispatched[1].time - dispatched[0].time, MINUTE, 'without waiting out the back-off');
  assert_false(dispatched[1].lastChance, 'the failed attempt still counts, and one more is left');
}, 'register() while waiting sets it pending and fires it at once');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tag = uniqueTag();
  await reg.sync.register(tag);
  await reg.sync.register(tag);
  await bgsyncTest.setOnline(true);
  await settle();
  assert_equals((await logFor(tag, 'dispatched')).length, 1, 'one registration, one event');
}, 'register() while pending changes nothing');
