// META: title=Background Sync interfaces: WebIDL shapes
// META: global=window,dedicatedworker,serviceworker
'use strict';

const isServiceWorker = 'ServiceWorkerGlobalScope' in self && self instanceof ServiceWorkerGlobalScope;

test(() => {
  assert_equals(typeof SyncManager, 'function');
  assert_equals(SyncManager.name, 'SyncManager');
  assert_equals(SyncManager.length, 0);
  const d = Object.getOwnPropertyDescriptor(self, 'SyncManager');
  assert_true(d.writable && d.configurable && !d.enumerable, 'interface object property');
}, 'SyncManager interface object');

test(() => {
  const d = Object.getOwnPropertyDescriptor(SyncManager, 'prototype');
  assert_false(d.writable || d.enumerable || d.configurable, 'prototype is fixed');
  assert_equals(SyncManager.prototype.constructor, SyncManager);
  assert_equals(SyncManager.prototype[Symbol.toStringTag], 'SyncManager');
  assert_class_string(SyncManager.prototype, 'SyncManager');
}, 'SyncManager.prototype');

test(() => {
  for (const [name, length] of [['register', 1], ['getTags', 0]]) {
    const d = Object.getOwnPropertyDescriptor(SyncManager.prototype, name);
    assert_equals(typeof d.value, 'function', name);
    assert_true(d.enumerable && d.writable && d.configurable, `${name} is a regular operation`);
    assert_equals(d.value.length, length, `${name}.length`);
    assert_equals(d.value.name, name, `${name}.name`);
  }
}, 'SyncManager operations');

test(() => {
  assert_throws_js(TypeError, () => new SyncManager());
}, 'SyncManager is not constructible');

test(() => {
  const d = Object.getOwnPropertyDescriptor(ServiceWorkerRegistration.prototype, 'sync');
  assert_equals(typeof d.get, 'function');
  assert_equals(d.set, undefined, 'readonly');
  assert_equals(d.get.name, 'get sync');
  assert_true(d.enumerable && d.configurable);
  assert_throws_js(TypeError, () => d.get.call({}));
}, 'ServiceWorkerRegistration.prototype.sync');

test(() => {
  if (isServiceWorker) {
    assert_equals(typeof SyncEvent, 'function');
    assert_equals(Object.getPrototypeOf(SyncEvent.prototype), ExtendableEvent.prototype);
    assert_equals(Object.getPrototypeOf(ExtendableEvent.prototype), Event.prototype);
    assert_equals(SyncEvent.length, 2);
  } else {
    assert_false('SyncEvent' in self, 'SyncEvent is exposed only to service workers');
    assert_false('ExtendableEvent' in self);
  }
}, 'SyncEvent exposure and inheritance');

test(() => {
  if (!isServiceWorker) return;
  const e = new SyncEvent('sync', { tag: 'x' });
  assert_equals(e.tag, 'x');
  assert_false(e.lastChance, 'lastChance defaults to false');
  assert_true(new SyncEvent('sync', { tag: 'x', lastChance: true }).lastChance);
  assert_throws_js(TypeError, () => new SyncEvent('sync'));
  assert_throws_js(TypeError, () => new SyncEvent('sync', {}));
  assert_throws_dom('InvalidStateError', () => e.waitUntil(Promise.resolve()), 'untrusted events cannot be extended');
  for (const a of ['tag', 'lastChance']) {
    const d = Object.getOwnPropertyDescriptor(SyncEvent.prototype, a);
    assert_equals(d.get.name, `get ${a}`);
    assert_equals(d.set, undefined);
  }
}, 'SyncEvent constructor and attributes');

test(() => {
  if (!isServiceWorker) return;
  const d = Object.getOwnPropertyDescriptor(self, 'onsync');
  assert_equals(typeof d.get, 'function');
  assert_equals(typeof d.set, 'function');
  assert_equals(self.onsync, null);
  const handler = () => {};
  self.onsync = handler;
  assert_equals(self.onsync, handler);
  self.onsync = null;
}, 'ServiceWorkerGlobalScope.onsync');

test(() => {
  const expected = isServiceWorker ? 'ServiceWorkerGlobalScope' : ('Window' in self ? 'Window' : 'DedicatedWorkerGlobalScope');
  assert_class_string(self, expected);
  assert_true(self.isSecureContext, 'a secure context');
}, 'the global object');
