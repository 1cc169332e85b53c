// META: title=Origins do not touch each other's registrations, permissions or windows
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
// META: script=resources/hosts.sub.js
'use strict';

// Windows and frames of other origins come from bgsyncTest.openWindow(url, {scripts}) and
// bgsyncTest.addIframe(url, {scripts}), whose handles run functions there with
// executeScript(fn, args) (the shape of WPT's RemoteContextWrapper); docs/testing.md.
const SCOPE = '/background-sync/resources/cross-origin/';
const HELPERS = ['/resources/testdriver.js', '/background-sync/resources/helpers.js'];
const page = (origin) => `${origin}/background-sync/resources/blank.html`;

// Registers the spec-tests' worker at SCOPE in the calling global and registers `tags` there;
// returns getTags() or the first exception's name.
async function registerTags(scope, tags) {
  const reg = await registerWorker(scope);
  try {
    for (const tag of tags) await reg.sync.register(tag);
  } catch (e) {
    return e.name;
  }
  return reg.sync.getTags();
}

async function tagsAt(scope) {
  const reg = await navigator.serviceWorker.getRegistration(scope);
  return reg ? reg.sync.getTags() : [];
}

promise_test(async (t) => {
  const b = await bgsyncTest.openWindow(page(HOSTS.alt), { scripts: HELPERS });
  t.add_cleanup(() => b.close());
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  assert_equals(await b.executeScript(() => location.origin), HOSTS.alt);
  assert_array_equals(await registerTags(SCOPE, ['only-a', 'shared']), ['only-a', 'shared']);
  assert_array_equals(await b.executeScript(registerTags, [SCOPE, ['only-b', 'shared']]),
    ['only-b', 'shared'], 'the other origin sees its own tags only');
  assert_array_equals(await tagsAt(SCOPE), ['only-a', 'shared'], 'and this origin its own');
}, 'two origins with the same scope path have separate registrations and tags');

promise_test(async (t) => {
  const b = await bgsyncTest.openWindow(page(HOSTS.www), { scripts: HELPERS });
  t.add_cleanup(() => b.close());
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await b.executeScript(() => test_driver.set_permission({ name: 'background-sync' }, 'denied'));
  t.add_cleanup(() => b.executeScript(() => test_driver.set_permission({ name: 'background-sync' }, 'granted')));
  assert_equals(await b.executeScript(registerTags, [SCOPE, ['denied-there']]), 'NotAllowedError',
    'denied for the other origin (same site)');
  assert_equals(await b.executeScript(() => navigator.permissions.query({ name: 'background-sync' }).then((p) => p.state)), 'denied');
  assert_equals((await navigator.permissions.query({ name: 'background-sync' })).state, 'granted',
    'this origin keeps its own permission');
  const reg = await registerWorker(SCOPE);
  await reg.sync.register('granted-here');
  assert_true((await reg.sync.getTags()).includes('granted-here'));
}, 'the background-sync permission is per origin, even within a site');

promise_test(async (t) => {
  const b = await bgsyncTest.openWindow(page(HOSTS.alt), { scripts: HELPERS });
  t.add_cleanup(() => b.close());
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await registerTags(SCOPE, ['kept']);
  await b.executeScript(registerTags, [SCOPE, ['cleared']]);
  await bgsyncTest.clearSiteData(HOSTS.alt);
  assert_array_equals(await b.executeScript(tagsAt, [SCOPE]), [], 'the cleared origin has none');
  assert_true((await tagsAt(SCOPE)).includes('kept'), 'the other origin keeps its own');
  await bgsyncTest.setOnline(true);
  await bgsyncTest.idle();
  assert_equals((await logFor('cleared', 'dispatched')).length, 0, 'a cleared registration never fires');
}, 'clearing one origin\'s site data leaves the other origin\'s registrations');

// The other origin's service worker calls register() itself, `ms` after its page asked.
async function askWorkerToRegister(scope, tag, ms) {
  const reg = await registerWorker(scope);
  reg.active.postMessage({ type: 'register-after', tag, ms });
}
async function askWorkerResult(scope, tag) {
  const reg = await registerWorker(scope);
  const reply = new Promise((resolve) => {
    navigator.serviceWorker.addEventListener('message', function onMessage(e) {
      if (e.data && e.data.type === 'result' && e.data.tag === tag) {
        navigator.serviceWorker.removeEventListener('message', onMessage);
        resolve(e.data.result);
      }
    });
  });
  reg.active.postMessage({ type: 'result', tag });
  return reply;
}

promise_test(async (t) => {
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  // With its window still open, the other origin's worker may register.
  const open = await bgsyncTest.openWindow(page(HOSTS.alt), { scripts: HELPERS });
  t.add_cleanup(() => open.close());
  await open.executeScript(askWorkerToRegister, [SCOPE, 'while-open', 1000]);
  await bgsyncTest.advanceTime(1000);
  assert_equals(await open.executeScript(askWorkerResult, [SCOPE, 'while-open']), 'ok');
  // Its window closed, only this origin's window is open: that does not count for it.
  await open.executeScript(askWorkerToRegister, [SCOPE, 'after-close', 1000]);
  await open.close();
  await bgsyncTest.advanceTime(1000);
  const again = await bgsyncTest.openWindow(page(HOSTS.alt), { scripts: HELPERS });
  t.add_cleanup(() => again.close());
  assert_equals(await again.executeScript(askWorkerResult, [SCOPE, 'after-close']), 'InvalidAccessError');
}, 'a window of one origin does not let another origin\'s worker register');

promise_test(async (t) => {
  const b = await bgsyncTest.openWindow(page(HOSTS.alt), { scripts: HELPERS });
  t.add_cleanup(() => b.close());
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await registerWorker(SCOPE);
  await b.executeScript((scope) => registerWorker(scope).then(() => undefined), [SCOPE]);
  // A dedicated worker of each page registers through the page's registration.
  const viaWorker = (scope, tag) => new Promise((resolve) => {
    const w = new Worker('/background-sync/resources/register-worker.js');
    w.onmessage = (e) => resolve(e.data);
    w.postMessage({ scope, tag });
  });
  const fromHere = await viaWorker(SCOPE, 'from-worker-a');
  assert_equals(fromHere.result, 'ok', 'this page\'s worker registered');
  assert_equals(fromHere.origin, HOSTS.same, 'the worker is of this page\'s origin');
  const tfromHere = await b.executeScript(viaWorker, [SCOPE, 'from-worker-b']);
  assert_equals(tfromHere.result, 'ok', 'the other page\'s worker registered');
  assert_equals(tfromHere.origin, HOSTS.alt, 'the worker is of the other page\'s origin');
  const here = await tagsAt(SCOPE);
  assert_true(here.includes('from-worker-a') && !here.includes('from-worker-b'), `this origin: ${here}`);
  const there = await b.executeScript(tagsAt, [SCOPE]);
  assert_true(there.includes('from-worker-b') && !there.includes('from-worker-a'), `the other origin: ${there}`);
}, 'a dedicated worker started by a page registers as the page\'s origin');

test(() => {
  assert_throws_dom('SecurityError', () => new Worker(`${HOSTS.alt}/background-sync/resources/register-worker.js`));
}, 'a dedicated worker of another origin cannot be started');

promise_test(async (t) => {
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  // A frame of this origin: this origin has a top-level window (this page), so it may register.
  const same = await bgsyncTest.addIframe(page(HOSTS.same), { scripts: HELPERS });
  t.add_cleanup(() => same.close());
  assert_array_equals(await same.executeScript(registerTags, [SCOPE, ['from-same-frame']]), ['from-same-frame']);
  // A frame of another site: its storage is partitioned under this page's site, and a frame is
  // not a top-level window, so register() is refused even while that origin has a window open.
  const top = await bgsyncTest.openWindow(page(HOSTS.alt), { scripts: HELPERS });
  t.add_cleanup(() => top.close());
  const frame = await bgsyncTest.addIframe(page(HOSTS.alt), { scripts: HELPERS });
  t.add_cleanup(() => frame.close());
  assert_equals(await frame.executeScript(() => window.top === window), false, 'a nested frame');
  assert_equals(await frame.executeScript(registerTags, [SCOPE, ['from-frame']]), 'InvalidAccessError');
  assert_array_equals(await top.executeScript(registerTags, [SCOPE, ['from-top']]), ['from-top'],
    'the same origin at the top level may register, in its own partition');
  assert_array_equals(await frame.executeScript(tagsAt, [SCOPE]), [], 'the frame\'s partition has none');
}, 'only top-level windows count: a frame of another site may not register (Chromium)');
