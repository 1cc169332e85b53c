// META: title=Service worker registrations are isolated
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

const A = '/background-sync/resources/a/';
const B = '/background-sync/resources/b/';

promise_test(async (t) => {
  const [a, b] = await Promise.all([registerWorker(A), registerWorker(B)]);
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await a.sync.register('only-a');
  await b.sync.register('only-b');
  await a.sync.register('both');
  await b.sync.register('both');
  assert_array_equals(await a.sync.getTags(), ['only-a', 'both']);
  assert_array_equals(await b.sync.getTags(), ['only-b', 'both']);
}, 'each registration has its own tags');

promise_test(async () => {
  await bgsyncTest.idle();
  const scopes = (tag) => syncEventsFor(tag).map((e) => new URL(e.scope).pathname).sort();
  assert_array_equals(scopes('only-a'), [A]);
  assert_array_equals(scopes('only-b'), [B]);
  assert_array_equals(scopes('both'), [A, B], 'the same tag fires once per registration');
}, 'events go to their own registration\'s worker');

promise_test(async () => {
  const b = await registerWorker(B);
  await b.unregister();
  const a = await registerWorker(A);
  await bgsyncTest.setOnline(false);
  await a.sync.register('still-a');
  assert_true((await a.sync.getTags()).includes('still-a'), 'unregistering B left A alone');
  await bgsyncTest.setOnline(true);
}, 'unregistering one registration leaves the other alone');
