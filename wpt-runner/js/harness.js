// bgsync's implementation of the testharness.js API, written for this project and served at
// /resources/testharness.js when no WPT checkout is given. It follows the documented API and
// statuses of web-platform-tests' harness; no code of that file is used.
(function (G) {
  'use strict';
  const TEST_STATUS = { PASS: 0, FAIL: 1, TIMEOUT: 2, NOTRUN: 3, PRECONDITION_FAILED: 4 };
  const HARNESS_STATUS = { OK: 0, ERROR: 1, TIMEOUT: 2, PRECONDITION_FAILED: 3 };
  const tests = [];
  const resultCallbacks = [];
  const completionCallbacks = [];
  const promiseQueue = [];
  let promiseRunning = false;
  const settings = { explicitDone: false, explicitTimeout: false, allowUncaught: false, singleTest: false };
  // The harness completes once the file has loaded (see the end), nothing holds it open
  // (explicit_done, single_test, a dedicated worker: until done()), and every test is done.
  let loaded = false;
  let waitForFinish = false;
  let complete = false;
  const harness = { status: HARNESS_STATUS.OK, message: null, stack: null };

  class AssertionError extends Error {
    constructor(message) { super(message); this.name = 'AssertionError'; }
  }
  class PreconditionFailedError extends Error {
    constructor(message) { super(message); this.name = 'PreconditionFailedError'; }
  }

  function formatValue(v, seen = []) {
    if (typeof v === 'string') {
      return '"' + v.replace(/[\\"\n\r\t\0\u2028\u2029]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\0': '\\0', '\u2028': '\\u2028', '\u2029': '\\u2029' })[c]) + '"';
    }
    if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
    if (typeof v === 'symbol' || typeof v === 'bigint') return String(v) + (typeof v === 'bigint' ? 'n' : '');
    if (v === null) return 'null';
    if (v === undefined) return 'undefined';
    if (typeof v === 'function') return `function "${v.name}"`;
    if (Array.isArray(v)) {
      if (seen.includes(v)) return '[...]';
      return '[' + v.map((x) => formatValue(x, seen.concat([v]))).join(', ') + ']';
    }
    try {
      if (v instanceof Error || (G.DOMException && v instanceof G.DOMException)) return `object "${v.name}: ${v.message}"`;
      return `object "${String(v)}"`;
    } catch (e) {
      return 'object';
    }
  }
  function sameValue(a, b) {
    if (a !== a && b !== b) return true;
    if (a === 0 && b === 0) return Object.is(a, b);
    return a === b;
  }
  function assert(ok, fn, description, template, subs) {
    if (ok) return;
    const msg = template.replace(/\$\{([^}]+)\}/g, (_, k) => (k in subs ? formatValue(subs[k]) : k));
    throw new AssertionError(`${fn}: ${description ? description + ' ' : ''}${msg}`);
  }

  // ---- Assertions -----------------------------------------------------------------------------
  const asserts = {
    assert_true(actual, d) { assert(actual === true, 'assert_true', d, 'expected true got ${actual}', { actual }); },
    assert_false(actual, d) { assert(actual === false, 'assert_false', d, 'expected false got ${actual}', { actual }); },
    assert_equals(actual, expected, d) {
      assert(typeof actual === typeof expected, 'assert_equals', d, 'expected (' + typeof expected + ') ${expected} but got (' + typeof actual + ') ${actual}', { actual, expected });
      assert(sameValue(actual, expected), 'assert_equals', d, 'expected ${expected} but got ${actual}', { actual, expected });
    },
    assert_not_equals(actual, expected, d) { assert(!sameValue(actual, expected), 'assert_not_equals', d, 'got disallowed value ${actual}', { actual }); },
    assert_in_array(actual, expected, d) { assert(expected.indexOf(actual) !== -1, 'assert_in_array', d, 'value ${actual} not in array ${expected}', { actual, expected }); },
    assert_array_equals(actual, expected, d) {
      assert(typeof actual === 'object' && actual !== null && 'length' in actual, 'assert_array_equals', d, 'value is ${actual}, expected array', { actual });
      assert(actual.length === expected.length, 'assert_array_equals', d, 'lengths differ, expected array ${expected} length ' + expected.length + ', got ${actual} length ' + actual.length, { actual, expected });
      for (let i = 0; i < actual.length; i++) {
        assert(sameValue(actual[i], expected[i]), 'assert_array_equals', d, 'expected array ${expected} got ${actual} (index ' + i + ' differs)', { actual, expected });
      }
    },
    assert_less_than(actual, expected, d) {
      assert(typeof actual === 'number' && actual < expected, 'assert_less_than', d, 'expected a number less than ${expected} but got ${actual}', { actual, expected });
    },
    assert_greater_than(actual, expected, d) {
      assert(typeof actual === 'number' && actual > expected, 'assert_greater_than', d, 'expected a number greater than ${expected} but got ${actual}', { actual, expected });
    },
    assert_less_than_equal(actual, expected, d) { assert(typeof actual === 'number' && actual <= expected, 'assert_less_than_equal', d, 'expected a number less than or equal to ${expected} but got ${actual}', { actual, expected }); },
    assert_greater_than_equal(actual, expected, d) { assert(typeof actual === 'number' && actual >= expected, 'assert_greater_than_equal', d, 'expected a number greater than or equal to ${expected} but got ${actual}', { actual, expected }); },
    assert_regexp_match(actual, expected, d) { assert(expected.test(actual), 'assert_regexp_match', d, 'expected ${expected} but got ${actual}', { actual, expected }); },
    assert_own_property(object, name, d) { assert(object != null && Object.prototype.hasOwnProperty.call(object, name), 'assert_own_property', d, 'expected property ${name} missing', { name }); },
    assert_not_own_property(object, name, d) { assert(!Object.prototype.hasOwnProperty.call(object, name), 'assert_not_own_property', d, 'unexpected property ${name} is found on object', { name }); },
    assert_inherits(object, name, d) {
      assert(typeof object === 'object' || typeof object === 'function', 'assert_inherits', d, 'provided value is not an object', {});
      assert(!Object.prototype.hasOwnProperty.call(object, name) && name in object, 'assert_inherits', d, 'property ${name} is not inherited', { name });
    },
    assert_idl_attribute(object, name, d) { asserts.assert_inherits(object, name, d); },
    assert_class_string(object, expected, d) {
      const actual = Object.prototype.toString.call(object);
      assert(actual === `[object ${expected}]`, 'assert_class_string', d, 'expected ${expected} but got ${actual}', { actual, expected: `[object ${expected}]` });
    },
    assert_readonly(object, name, d) {
      const before = object[name];
      try {
        object[name] = before + 'a';
        assert(sameValue(object[name], before), 'assert_readonly', d, 'changing property ${name} succeeded', { name });
      } finally {
        try { object[name] = before; } catch (e) { /* read-only indeed */ }
      }
    },
    assert_unreached(d) { assert(false, 'assert_unreached', d, 'Reached unreachable code', {}); },
    assert_implements(condition, d) { if (!condition) throw new AssertionError(`assert_implements: ${d}`); },
    assert_implements_optional(condition, d) { if (!condition) throw new PreconditionFailedError(d); },
    assert_throws_js(ctor, func, d) {
      try { func.call(null); } catch (e) {
        assert(typeof e === 'object' && e !== null, 'assert_throws_js', d, '${func} threw ${e}, not an object', { func, e });
        assert(e.constructor === ctor && e.name === ctor.name, 'assert_throws_js', d, '${func} threw ${e} (' + (e.name) + ') expected instance of ' + ctor.name, { func, e });
        return;
      }
      assert(false, 'assert_throws_js', d, '${func} did not throw', { func });
    },
    assert_throws_dom(type, ctorOrFunc, funcOrDesc, maybeDesc) {
      const [ctor, func, d] = typeof funcOrDesc === 'function' ? [ctorOrFunc, funcOrDesc, maybeDesc] : [G.DOMException, ctorOrFunc, funcOrDesc];
      try { func.call(null); } catch (e) {
        checkDomException('assert_throws_dom', type, ctor, e, d);
        return;
      }
      assert(false, 'assert_throws_dom', d, '${func} did not throw', { func });
    },
    assert_throws_exactly(exception, func, d) {
      try { func.call(null); } catch (e) {
        assert(sameValue(e, exception), 'assert_throws_exactly', d, '${func} threw ${e} but we expected it to throw ${exception}', { func, e, exception });
        return;
      }
      assert(false, 'assert_throws_exactly', d, '${func} did not throw', { func });
    },
  };
  const codeNames = {
    INDEX_SIZE_ERR: 'IndexSizeError', HIERARCHY_REQUEST_ERR: 'HierarchyRequestError', WRONG_DOCUMENT_ERR: 'WrongDocumentError',
    INVALID_CHARACTER_ERR: 'InvalidCharacterError', NO_MODIFICATION_ALLOWED_ERR: 'NoModificationAllowedError', NOT_FOUND_ERR: 'NotFoundError',
    NOT_SUPPORTED_ERR: 'NotSupportedError', INVALID_STATE_ERR: 'InvalidStateError', SYNTAX_ERR: 'SyntaxError',
    INVALID_MODIFICATION_ERR: 'InvalidModificationError', NAMESPACE_ERR: 'NamespaceError', INVALID_ACCESS_ERR: 'InvalidAccessError',
    TYPE_MISMATCH_ERR: 'TypeMismatchError', SECURITY_ERR: 'SecurityError', NETWORK_ERR: 'NetworkError', ABORT_ERR: 'AbortError',
    URL_MISMATCH_ERR: 'URLMismatchError', QUOTA_EXCEEDED_ERR: 'QuotaExceededError', TIMEOUT_ERR: 'TimeoutError',
    INVALID_NODE_TYPE_ERR: 'InvalidNodeTypeError', DATA_CLONE_ERR: 'DataCloneError',
  };
  const nameCodes = { IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5, NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25 };
  function checkDomException(fn, type, ctor, e, d) {
    let name = type;
    if (typeof type === 'number') name = Object.keys(nameCodes).find((n) => nameCodes[n] === type);
    else if (type in codeNames) name = codeNames[type];
    assert(typeof e === 'object' && e !== null, fn, d, 'thrown value ${e} is not an object', { e });
    assert(e.name === name, fn, d, 'expected ' + name + ' but got ${e}', { e });
    assert(e.constructor === ctor, fn, d, 'the exception is not from the expected realm or constructor', {});
    assert(e.code === (nameCodes[name] || 0), fn, d, 'code is ' + e.code + ', expected ' + (nameCodes[name] || 0), {});
  }

  // ---- Tests ----------------------------------------------------------------------------------
  function Test(name, properties) {
    this.name = name;
    this.status = TEST_STATUS.NOTRUN;
    this.message = null;
    this.stack = null;
    this.phase = 'initial';
    this.properties = properties || {};
    this._cleanups = [];
    this._done = false;
    this._timers = [];
    tests.push(this);
  }
  Test.statuses = TEST_STATUS;
  Test.prototype.PASS = 0; Test.prototype.FAIL = 1; Test.prototype.TIMEOUT = 2; Test.prototype.NOTRUN = 3; Test.prototype.PRECONDITION_FAILED = 4;
  Test.prototype.step = function (fn, thisObj, ...args) {
    if (this._done) return undefined;
    if (this.phase === 'initial') this.phase = 'started';
    try {
      return fn.apply(thisObj === undefined ? this : thisObj, args);
    } catch (e) {
      this._fail(e);
      return undefined;
    }
  };
  Test.prototype._fail = function (e) {
    if (this._done) return;
    if (e instanceof PreconditionFailedError) {
      this.status = TEST_STATUS.PRECONDITION_FAILED;
    } else {
      this.status = TEST_STATUS.FAIL;
    }
    this.message = e && typeof e === 'object' && 'message' in e ? (e instanceof AssertionError || e instanceof PreconditionFailedError ? e.message : `${e.name}: ${e.message}`) : String(e);
    this.stack = e && e.stack ? String(e.stack) : null;
    this._finish();
  };
  Test.prototype.step_func = function (fn, thisObj) {
    const t = this;
    return function (...args) { return t.step(fn, thisObj === undefined ? this : thisObj, ...args); };
  };
  Test.prototype.step_func_done = function (fn, thisObj) {
    const t = this;
    return function (...args) {
      let r;
      if (fn) r = t.step(fn, thisObj === undefined ? this : thisObj, ...args);
      t.done();
      return r;
    };
  };
  Test.prototype.unreached_func = function (description) {
    return this.step_func(() => asserts.assert_unreached(description));
  };
  Test.prototype.step_timeout = function (fn, ms, ...args) {
    const t = this;
    const id = G.setTimeout(() => t.step(fn, t, ...args), ms);
    this._timers.push(id);
    return id;
  };
  Test.prototype.step_wait = function (cond, description, timeout = 3000, interval = 100) {
    const t = this;
    return new Promise((resolve, reject) => {
      const start = Date.now();
      const check = () => {
        let ok;
        try { ok = cond(); } catch (e) { reject(e); return; }
        if (ok) resolve();
        else if (Date.now() - start > timeout) reject(new AssertionError(`step_wait: ${description || 'timed out'}`));
        else t.step_timeout(check, interval);
      };
      check();
    });
  };
  Test.prototype.add_cleanup = function (fn) { this._cleanups.push(fn); };
  Test.prototype.done = function () {
    if (this._done) return;
    if (this.status === TEST_STATUS.NOTRUN) this.status = TEST_STATUS.PASS;
    this._finish();
  };
  Test.prototype.force_timeout = function () { this._timeout(); };
  Test.prototype._timeout = function () {
    if (this._done) return;
    this.status = this.phase === 'initial' ? TEST_STATUS.NOTRUN : TEST_STATUS.TIMEOUT;
    this.message = this.status === TEST_STATUS.TIMEOUT ? 'Test timed out' : null;
    this._finish();
  };
  Test.prototype._finish = function () {
    if (this._done) return;
    this._done = true;
    this.phase = 'complete';
    for (const id of this._timers) G.clearTimeout(id);
    const cleanups = this._cleanups.splice(0);
    const results = [];
    for (const c of cleanups) {
      try { results.push(c()); } catch (e) { harnessError(`Test named '${this.name}' threw in a cleanup: ${e}`); }
    }
    const after = () => {
      for (const cb of resultCallbacks) { try { cb(this); } catch (e) { /* callbacks must not break the run */ } }
      if (this._onDone) this._onDone();
      maybeComplete();
    };
    const pending = results.filter((r) => r && typeof r.then === 'function');
    if (pending.length) Promise.allSettled(pending).then(after); else after();
  };
  function harnessError(message) {
    if (harness.status === HARNESS_STATUS.OK) {
      harness.status = HARNESS_STATUS.ERROR;
      harness.message = message;
    }
  }

  function test(fn, name, properties) {
    const t = new Test(name === undefined ? defaultName() : name, properties);
    t.step(fn, t, t);
    t.done();
    return t;
  }
  function async_test(fn, name, properties) {
    if (typeof fn !== 'function') { properties = name; name = fn; fn = null; }
    const t = new Test(name === undefined ? defaultName() : name, properties);
    if (fn) t.step(fn, t, t);
    return t;
  }
  function promise_test(fn, name, properties) {
    const t = new Test(name === undefined ? defaultName() : name, properties);
    promiseQueue.push(() => new Promise((resolve) => {
      t._onDone = resolve;
      let p;
      t.phase = 'started';
      try { p = fn.call(t, t); } catch (e) { t._fail(e); return; }
      if (!p || typeof p.then !== 'function') {
        t._fail(new AssertionError('promise_test: test body must return a promise'));
        return;
      }
      Promise.resolve(p).then(() => t.done(), (e) => t._fail(e));
    }));
    runPromiseTests();
    return t;
  }
  function runPromiseTests() {
    if (promiseRunning) return;
    const next = promiseQueue.shift();
    if (!next) { maybeComplete(); return; }
    promiseRunning = true;
    Promise.resolve().then(next).then(() => { promiseRunning = false; runPromiseTests(); });
  }
  function promise_rejects_js(t, ctor, promise, d) {
    return Promise.resolve(promise).then(
      () => { throw new AssertionError(`promise_rejects_js: ${d ? d + ' ' : ''}Promise resolved, expected ${ctor.name}`); },
      (e) => asserts.assert_throws_js(ctor, () => { throw e; }, d));
  }
  function promise_rejects_dom(t, type, ctorOrPromise, promiseOrDesc, maybeDesc) {
    const [ctor, promise, d] = ctorOrPromise && typeof ctorOrPromise.then === 'function' ? [G.DOMException, ctorOrPromise, promiseOrDesc] : [ctorOrPromise, promiseOrDesc, maybeDesc];
    return Promise.resolve(promise).then(
      () => { throw new AssertionError(`promise_rejects_dom: ${d ? d + ' ' : ''}Promise resolved, expected ${type}`); },
      (e) => checkDomException('promise_rejects_dom', type, ctor, e, d));
  }
  function promise_rejects_exactly(t, exception, promise, d) {
    return Promise.resolve(promise).then(
      () => { throw new AssertionError(`promise_rejects_exactly: ${d ? d + ' ' : ''}Promise resolved`); },
      (e) => asserts.assert_throws_exactly(exception, () => { throw e; }, d));
  }
  let nameCounter = 0;
  // The page's <title>, else the worker wrapper's META_TITLE, else the file name up to its first dot.
  function defaultName() {
    const path = G.location ? G.location.pathname : '';
    const file = path.substring(path.lastIndexOf('/') + 1);
    const title = (G.document && G.document.title) || G.META_TITLE || (file ? file.substring(0, file.indexOf('.') < 0 ? file.length : file.indexOf('.')) : 'Untitled');
    return nameCounter++ === 0 ? title : `${title} ${nameCounter - 1}`;
  }
  function setup(fnOrProps, maybeProps) {
    const props = typeof fnOrProps === 'function' ? maybeProps || {} : fnOrProps || {};
    if (props.explicit_done) { settings.explicitDone = true; waitForFinish = true; }
    if (props.explicit_timeout) settings.explicitTimeout = true;
    if (props.allow_uncaught_exception) settings.allowUncaught = true;
    if (props.single_test && !settings.singleTest) {
      // The whole file is one test, named by its title, that done() completes.
      if (tests.length) throw new Error('Tried to set file as test after creating a test');
      settings.singleTest = true;
      waitForFinish = true;
      async_test(defaultName());
    }
    if (typeof fnOrProps === 'function') {
      try { fnOrProps(); } catch (e) {
        if (e instanceof PreconditionFailedError) { harness.status = HARNESS_STATUS.PRECONDITION_FAILED; harness.message = e.message; } else harnessError(`setup failed: ${e}`);
        finishAll();
      }
    }
  }
  function promise_setup(fn, props) {
    setup(props || {});
    const t = { name: 'promise_setup' };
    promiseQueue.unshift(() => Promise.resolve().then(() => fn()).catch((e) => { harnessError(`promise_setup failed: ${e}`); finishAll(); }));
    runPromiseTests();
    return t;
  }
  function done() {
    if (!tests.length) {
      harnessError('done() was called without first defining any tests');
      finishAll();
      return;
    }
    if (settings.singleTest) tests[0].done();
    waitForFinish = false;
    maybeComplete();
  }
  function add_result_callback(cb) { resultCallbacks.push(cb); }
  function add_completion_callback(cb) { completionCallbacks.push(cb); }
  function add_start_callback() {}
  function maybeComplete() {
    if (complete || !tests.length || !loaded || waitForFinish) return;
    if (promiseRunning || promiseQueue.length) return;
    if (tests.some((t) => !t._done)) return;
    finishAll();
  }
  function finishAll() {
    if (complete) return;
    for (const t of tests) if (!t._done) { t.status = TEST_STATUS.NOTRUN; t._done = true; t.phase = 'complete'; }
    complete = true;
    const status = { status: harness.status, message: harness.message, stack: harness.stack };
    for (const cb of completionCallbacks) { try { cb(tests, status, []); } catch (e) { /* keep reporting */ } }
    post({ type: 'complete', tests: tests.map((t) => ({ name: t.name, status: t.status, message: t.message, stack: t.stack })), status });
  }
  // A worker's results go to whoever connects, as the message the page's harness reads
  // (fetch_tests_from_worker): a dedicated worker posts to its owner, a service worker to each
  // client that sent {type: 'connect'}; messages sent before a client connects are replayed.
  const sent = [];
  const ports = [];
  function post(message) {
    if (!isWorker) return;
    sent.push(message);
    for (const p of ports) p.postMessage(message);
  }
  function connect(port) {
    ports.push(port);
    for (const m of sent) port.postMessage(m);
  }
  // Harness timeout: the runner calls timeout() when the file's time is up.
  function timeout() {
    if (complete) return;
    if (harness.status === HARNESS_STATUS.OK) harness.status = HARNESS_STATUS.TIMEOUT;
    for (const t of tests) t._timeout();
    promiseQueue.length = 0;
    finishAll();
  }
  function step_timeout(fn, ms, ...args) { return G.setTimeout(fn, ms, ...args); }
  // An uncaught exception (the global's error event) fails a single-test file's test, and
  // otherwise makes the harness status ERROR; either way it ends the file's explicit wait (done()).
  G.addEventListener('error', (e) => {
    const error = e.error;
    if (settings.singleTest && tests[0]) {
      tests[0]._fail(error === undefined ? new Error(e.message) : error);
    } else if (!settings.allowUncaught) {
      harnessError(`Uncaught ${error && error.name ? error.name + ': ' + error.message : e.message}`);
    } else {
      return;
    }
    done();
  });

  // When the file has loaded — a browser's lifecycle, as WPT's wrappers give it:
  // - a window: the load event (after the wrapper page's scripts, the test file the last), then
  //   one more task, so that what the file queued has started;
  // - a service worker: its install event or the first message, which come after its script;
  // - a dedicated worker: the wrapper's closing done().
  const isWindow = 'document' in G;
  const isServiceWorker = typeof G.ServiceWorkerGlobalScope === 'function' && G instanceof G.ServiceWorkerGlobalScope;
  const isWorker = !isWindow && typeof G.WorkerGlobalScope === 'function' && G instanceof G.WorkerGlobalScope;
  const onLoaded = () => { loaded = true; maybeComplete(); };
  if (isWindow) {
    G.addEventListener('load', () => G.setTimeout(onLoaded, 0));
  } else if (isServiceWorker) {
    G.addEventListener('install', () => { if (!loaded) onLoaded(); });
    G.addEventListener('message', (e) => {
      if (e.data && e.data.type === 'connect' && e.source) connect(e.source);
      if (!loaded) onLoaded();
    });
  } else if (isWorker) {
    loaded = true;
    waitForFinish = true;
    connect(G);
  }

  const api = Object.assign({
    test, async_test, promise_test, setup, promise_setup, done, add_result_callback, add_completion_callback,
    add_start_callback, promise_rejects_js, promise_rejects_dom, promise_rejects_exactly, step_timeout, timeout,
    format_value: formatValue, AssertionError, PreconditionFailedError,
  }, asserts);
  for (const [k, v] of Object.entries(api)) G[k] = v;
  G.Test = Test;
})(globalThis);
