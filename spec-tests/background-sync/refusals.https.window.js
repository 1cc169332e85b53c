// META: title=SyncManager.register() refusals
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

// https://wicg.github.io/background-sync/spec/#dom-syncmanager-register

promise_test(async (t) => {
  const reg = await navigator.serviceWorker.register(SW_URL, { scope: '/background-sync/resources/installing/' });
  assert_equals(reg.active, null, 'the worker is still installing');
  await promise_rejects_dom(t, 'InvalidStateError', reg.sync.register('too-early'));
}, 'register() without an active worker rejects with InvalidStateError');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setWindowClient(false);
  t.add_cleanup(resetUserAgent);
  await promise_rejects_dom(t, 'InvalidAccessError', reg.sync.register(uniqueTag()));
}, 'register() with no top-level window client rejects with InvalidAccessError');

promise_test(async (t) => {
  const reg = await registerWorker();
  await test_driver.set_permission({ name: 'background-sync' }, 'denied');
  t.add_cleanup(resetUserAgent);
  await promise_rejects_dom(t, 'NotAllowedError', reg.sync.register(uniqueTag()));
}, 'register() with the permission denied rejects with NotAllowedError');

promise_test(async (t) => {
  const reg = await registerWorker();
  await test_driver.set_permission({ name: 'background-sync' }, 'denied');
  await bgsyncTest.setWindowClient(false);
  t.add_cleanup(resetUserAgent);
  // Step 3 (the permission) comes before steps 4-6 (in the background). Chromium checks the
  // window first and answers InvalidAccessError: docs/chromium.md.
  await promise_rejects_dom(t, 'NotAllowedError', reg.sync.register(uniqueTag()));
}, 'with the permission denied and no window, the permission is checked first');

promise_test(async (t) => {
  const reg = await registerWorker();
  await test_driver.set_permission({ name: 'background-sync' }, 'prompt');
  t.add_cleanup(resetUserAgent);
  const tag = uniqueTag();
  // Only a user who disabled background sync refuses it (register, step 3); 'prompt' is not
  // that. Chromium agrees.
  await reg.sync.register(tag);
  assert_true((await reg.sync.getTags()).includes(tag));
}, "register() with the permission 'prompt' resolves: only 'denied' refuses");

promise_test(async (t) => {
  const reg = await registerWorker();
  await promise_rejects_js(t, TypeError, reg.sync.register(Symbol('tag')));
}, 'a Symbol tag rejects with TypeError');

promise_test(async (t) => {
  const reg = await registerWorker();
  await promise_rejects_js(t, TypeError, reg.sync.register());
}, 'register() without an argument rejects with TypeError');

promise_test(async (t) => {
  await promise_rejects_js(t, TypeError, SyncManager.prototype.register.call({}, 'x'));
  await promise_rejects_js(t, TypeError, SyncManager.prototype.getTags.call(undefined));
}, 'calling SyncManager methods on other objects rejects with TypeError');

test(() => {
  assert_throws_js(TypeError, () => new SyncManager());
  assert_throws_js(TypeError, () => SyncManager());
}, 'SyncManager has no constructor');

promise_test(async (t) => {
  const reg = await navigator.serviceWorker.register(SW_URL, { scope: '/background-sync/resources/gone/' });
  await new Promise((resolve) => {
    const w = reg.installing;
    w.addEventListener('statechange', () => { if (w.state === 'activated') resolve(); });
  });
  assert_true(await reg.unregister());
  await promise_rejects_dom(t, 'InvalidStateError', reg.sync.register(uniqueTag()));
}, 'register() on an unregistered registration rejects with InvalidStateError');
