// META: title=The background-sync permission
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

promise_test(async (t) => {
  const status = await navigator.permissions.query({ name: 'background-sync' });
  assert_equals(status.state, 'granted', 'granted by default');
  await test_driver.set_permission({ name: 'background-sync' }, 'denied');
  t.add_cleanup(resetUserAgent);
  assert_equals(status.state, 'denied');
}, 'navigator.permissions reflects the permission');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tag = uniqueTag();
  await reg.sync.register(tag);
  await test_driver.set_permission({ name: 'background-sync' }, 'denied');
  await bgsyncTest.setOnline(true);
  await bgsyncTest.idle();
  assert_equals((await logFor(tag, 'dispatched')).length, 0, 'nothing fires while denied');
  assert_true((await reg.sync.getTags()).includes(tag), 'the registration is kept');
  await test_driver.set_permission({ name: 'background-sync' }, 'granted');
  await bgsyncTest.idle();
  assert_equals((await logFor(tag, 'dispatched')).length, 1, 'it fires once granted again');
}, 'permission denied holds registrations until it is granted again');

promise_test(async (t) => {
  t.add_cleanup(resetUserAgent);
  await promise_rejects_js(t, TypeError, navigator.permissions.query({ name: 'no-such-permission' }));
}, 'an unknown permission name is a TypeError');
