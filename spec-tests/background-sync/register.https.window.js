// META: title=SyncManager.register() and getTags()
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// https://wicg.github.io/background-sync/spec/#dom-syncmanager-register
// https://wicg.github.io/background-sync/spec/#dom-syncmanager-gettags

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const result = await reg.sync.register('plain');
  assert_equals(result, undefined, 'register() resolves with undefined');
  assert_array_equals(await reg.sync.getTags(), ['plain']);
}, 'register() resolves with undefined and getTags() lists the tag');

promise_test(async (t) => {
  const reg = await registerWorker();
  assert_equals(reg.sync, reg.sync, 'the same SyncManager each time');
  assert_class_string(reg.sync, 'SyncManager');
}, 'ServiceWorkerRegistration.sync is one SyncManager');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tag = uniqueTag();
  await reg.sync.register(tag);
  await reg.sync.register(tag);
  const tags = await reg.sync.getTags();
  assert_equals(tags.filter((x) => x === tag).length, 1);
}, 'registering a tag twice keeps one registration');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await reg.sync.register('');
  assert_true((await reg.sync.getTags()).includes(''));
}, 'the empty tag is a valid tag');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tag = 'x'.repeat(10240);
  await reg.sync.register(tag);
  assert_true((await reg.sync.getTags()).includes(tag));
}, 'a tag of exactly 10,240 bytes of UTF-8 is accepted');

promise_test(async (t) => {
  const reg = await registerWorker();
  await promise_rejects_dom(t, 'InvalidAccessError', reg.sync.register('x'.repeat(10241)));
  await promise_rejects_dom(t, 'InvalidAccessError', reg.sync.register('\u00e9'.repeat(5121)));
}, 'a tag of 10,241 bytes of UTF-8 is refused with InvalidAccessError');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await reg.sync.register(42);
  await reg.sync.register({ toString() { return 'from-object'; } });
  await reg.sync.register(null);
  const tags = await reg.sync.getTags();
  for (const expected of ['42', 'from-object', 'null']) assert_in_array(expected, tags);
}, 'the tag is converted to a DOMString');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  for (const tag of ['zz-b', '\uff5e', 'zz-a', '\u{1F4E7}']) await reg.sync.register(tag);
  // Re-registering does not move a tag: it is the same registration.
  await reg.sync.register('zz-b');
  const tags = (await reg.sync.getTags()).filter((x) => ['zz-a', 'zz-b', '\uff5e', '\u{1F4E7}'].includes(x));
  // getTags() adds the tag of each registration in the list, and registrations are added to its
  // end (register, step 9): the order of registration. (Chromium sorts by UTF-8 bytes:
  // docs/chromium.md.)
  assert_array_equals(tags, ['zz-b', '\uff5e', 'zz-a', '\u{1F4E7}'], 'in the order of registration');
}, 'getTags() lists tags in the order they were registered');

promise_test(async (t) => {
  const reg = await registerWorker();
  const tag = uniqueTag('hang-');
  await reg.sync.register(tag);
  assert_true((await reg.sync.getTags()).includes(tag), 'a firing registration is listed');
  await bgsyncTest.advanceTime(3 * MINUTE);
  assert_true((await reg.sync.getTags()).includes(tag), 'a waiting registration is listed');
}, 'getTags() lists registrations in every state');

promise_test(async () => {
  const reg = await registerWorker();
  const tag = uniqueTag();
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  assert_false((await reg.sync.getTags()).includes(tag));
  assert_array_equals((await logFor(tag)).map((e) => e.type), ['registered', 'dispatched', 'completed']);
}, 'a registration whose sync event succeeded is gone');
