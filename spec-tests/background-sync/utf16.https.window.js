// META: title=Tags are DOMStrings
// META: script=/resources/testdriver.js
// META: script=/resources/testdriver-vendor.js
// META: script=resources/helpers.js
'use strict';

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await reg.sync.register('\uD800');
  await reg.sync.register('\uDC00');
  const tags = (await reg.sync.getTags()).filter((x) => x.length === 1 && x.charCodeAt(0) >= 0xD800 && x.charCodeAt(0) <= 0xDFFF);
  assert_array_equals(tags, ['\uD800', '\uDC00']);
}, 'lone surrogates are distinct tags and survive getTags()');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  const tag = 'a\0b\u{1F4E7}';
  await reg.sync.register(tag);
  assert_true((await reg.sync.getTags()).includes(tag));
}, 'NUL and astral characters are kept');

promise_test(async () => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(true);
  const tag = '\uDBFF-lone';
  await reg.sync.register(tag);
  await bgsyncTest.idle();
  assert_equals(syncEventsFor(tag).length, 1, 'the worker saw the same code units');
}, 'the worker receives the tag code unit for code unit');

promise_test(async (t) => {
  const reg = await registerWorker();
  await bgsyncTest.setOnline(false);
  t.add_cleanup(resetUserAgent);
  await reg.sync.register('x'.repeat(10237) + '\uD800');
  await promise_rejects_dom(t, 'InvalidAccessError', reg.sync.register('x'.repeat(10238) + '\uD800'));
}, 'a lone surrogate counts 3 bytes toward the 10,240-byte limit');
