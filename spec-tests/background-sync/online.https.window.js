// META: title=Going offline and online
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// https://wicg.github.io/background-sync/spec/#online

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tag = uniqueTag();
  await reg.sync.register(tag);
  await bgsyncTest.advanceTime(60 * MINUTE);
  assert_equals((await logFor(tag, 'dispatched')).length, 0);
  assert_true((await reg.sync.getTags()).includes(tag));
}, 'nothing fires while offline');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tags = [uniqueTag(), uniqueTag(), uniqueTag()];
  for (const tag of tags) await reg.sync.register(tag);
  await bgsyncTest.setOnline(true);
  await bgsyncTest.idle();
  for (const tag of tags) assert_equals(syncEventsFor(tag).length, 1, tag);
}, 'going online fires every pending registration');

promise_test(async (t) => {
  t.add_cleanup(resetUserAgent);
  const events = [];
  const onOffline = () => events.push(['offline', navigator.onLine]);
  const onOnline = () => events.push(['online', navigator.onLine]);
  self.addEventListener('offline', onOffline);
  self.addEventListener('online', onOnline);
  t.add_cleanup(() => { self.removeEventListener('offline', onOffline); self.removeEventListener('online', onOnline); });
  await bgsyncTest.setOnline(false);
  await bgsyncTest.setOnline(true);
  await new Promise((r) => t.step_timeout(r, 0));
  assert_equals(JSON.stringify(events), JSON.stringify([['offline', false], ['online', true]]));
}, 'navigator.onLine and the online/offline events follow the network');

promise_test(async (t) => {
  const reg = await registerWorker();
  const tag = uniqueTag('reject-');
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await bgsyncTest.advanceTime(30 * MINUTE);
  assert_equals((await logFor(tag, 'dispatched')).length, 1, 'the retry waits for the network');
  await bgsyncTest.setOnline(true);
  await bgsyncTest.idle();
  const dispatched = await logFor(tag, 'dispatched');
  assert_equals(dispatched.length, 2);
  assert_false(dispatched[1].lastChance, 'waiting offline cost no attempt');
}, 'a retry that falls due offline fires when the network returns');
