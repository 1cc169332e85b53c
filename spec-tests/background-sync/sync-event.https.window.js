// META: title=The sync event
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// https://wicg.github.io/background-sync/spec/#fire-a-sync-event

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag();
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  const events = syncEventsFor(tag);
  assert_equals(events.length, 1, 'one event');
  assert_equals(events[0].tag, tag);
  assert_false(events[0].lastChance, 'lastChance on the first attempt');
}, 'the worker receives a sync event with the tag and lastChance false');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag();
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  const [e] = syncEventsFor(tag);
  assert_true(e.isTrusted, 'isTrusted');
  assert_true(e.isSyncEvent, 'a SyncEvent');
  assert_true(e.isExtendableEvent, 'an ExtendableEvent');
}, 'the sync event is a trusted SyncEvent');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag();
  const order = [];
  const registered = reg.sync.register(tag).then(() => order.push('resolved'));
  await registered;
  await bgsyncTest.idle();
  const log = await logFor(tag);
  assert_array_equals(log.map((e) => e.type), ['registered', 'dispatched', 'completed']);
  assert_array_equals(order, ['resolved']);
}, 'the event is dispatched only after register() resolved');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('slow-');
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  const [completed] = await logFor(tag, 'completed');
  assert_equals(completed.outcome, 'fulfilled', 'waitUntil fulfilled after real time');
  assert_false((await reg.sync.getTags()).includes(tag));
}, 'a waitUntil promise that fulfils later completes the registration');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('throw-');
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  const [completed] = await logFor(tag, 'completed');
  // Fire a sync event waits for the extend lifetime promises only, and there are none: the
  // attempt succeeded (Chromium agrees; docs/chromium.md).
  assert_equals(completed.outcome, 'fulfilled', 'a throwing listener does not fail the attempt');
  assert_false((await reg.sync.getTags()).includes(tag), 'the registration is done');
}, 'a listener that throws without waitUntil() completes the registration');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag('reject-');
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  const [completed] = await logFor(tag, 'completed');
  assert_equals(completed.outcome, 'rejected');
  assert_true((await reg.sync.getTags()).includes(tag));
}, 'a rejected waitUntil promise fails the attempt');
