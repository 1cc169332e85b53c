// The minimal service-worker environment of bgsync's QuickJS binding: WebIDL-shaped interfaces
// for one global (a Window, a DedicatedWorkerGlobalScope or a ServiceWorkerGlobalScope).
// Written for this project. Called once per realm as prelude(native, kind, info); `native` holds
// the Rust functions, and the returned object holds the hooks Rust calls back.
(function prelude(native, kind, info) {
  'use strict';
  const G = globalThis;
  const INTERNAL = Symbol('internal construction');
  const slots = new WeakMap();
  const exposure = {
    window: ['Window', '*'],
    worker: ['Worker', 'DedicatedWorker', '*'],
    serviceworker: ['Worker', 'ServiceWorker', '*'],
  }[kind];

  function slot(obj) { return slots.get(obj); }
  function brandCheck(obj, iface, member) {
    const s = slots.get(obj);
    if (!s || !s.brands.has(iface)) {
      throw new TypeError(`'${member}' called on an object that does not implement interface ${iface}.`);
    }
    return s;
  }
  function setName(fn, name) { Object.defineProperty(fn, 'name', { value: name, configurable: true }); return fn; }
  function setLength(fn, n) { Object.defineProperty(fn, 'length', { value: n, configurable: true }); return fn; }
  function toDOMString(v) { return typeof v === 'symbol' ? (() => { throw new TypeError('Cannot convert a Symbol value to a string'); })() : `${v}`; }
  function units(s) { const u = new Array(s.length); for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return u; }
  function fromUnits(u) { let s = ''; for (let i = 0; i < u.length; i += 4096) s += String.fromCharCode.apply(null, u.slice(i, i + 4096)); return s; }
  function missing(iface, op, required, given) {
    return new TypeError(`Failed to execute '${op}' on '${iface}': ${required} argument${required === 1 ? '' : 's'} required, but only ${given} present.`);
  }

  // The user agent's clocks. Date reads the controlled wall clock, which moves only when a test
  // advances it (as Chromium's does under a frozen libfaketime clock); performance.now() reads
  // the monotonic clock, which runs in real time and jumps with each advance, as timers do.
  (function installClocks() {
    const RealDate = G.Date;
    const Date = setName(function Date(...args) {
      if (new.target === undefined) return new RealDate(native.now()).toString();
      if (args.length === 0) return Reflect.construct(RealDate, [native.now()], new.target);
      return Reflect.construct(RealDate, args, new.target);
    }, 'Date');
    Object.defineProperty(Date, 'length', { value: 7, configurable: true });
    Date.prototype = RealDate.prototype;
    Object.defineProperty(Date, 'prototype', { writable: false, enumerable: false, configurable: false });
    Object.defineProperty(RealDate.prototype, 'constructor', { value: Date, writable: true, configurable: true });
    for (const name of ['parse', 'UTC']) {
      Object.defineProperty(Date, name, { value: RealDate[name], writable: true, configurable: true });
    }
    Object.defineProperty(Date, 'now', { value: setName(function now() { return native.now(); }, 'now'), writable: true, configurable: true });
    Object.defineProperty(G, 'Date', { value: Date, writable: true, configurable: true });
    const origin = native.monotonic();
    const timeOrigin = native.now();
    const performance = Object.create(null);
    Object.defineProperties(performance, {
      now: { value: setName(function now() { return native.monotonic() - origin; }, 'now'), writable: true, configurable: true },
      timeOrigin: { get: () => timeOrigin, configurable: true },
      toJSON: { value: setName(function toJSON() { return { timeOrigin }; }, 'toJSON'), writable: true, configurable: true },
    });
    Object.defineProperty(G, 'performance', { value: performance, writable: true, configurable: true, enumerable: true });
  })();

  const interfaces = {};
  // WebIDL's "exposed": a construct marked `secureContext` ([SecureContext]) is not exposed in a
  // global that is not a secure context.
  const hidden = (construct) => !!construct.secureContext && !info.isSecureContext;
  // Defines an interface object and its prototype with WebIDL's shapes.
  function define(name, spec) {
    const parent = spec.parent ? interfaces[spec.parent] : null;
    const exposed = spec.exposed || ['Window', 'Worker'];
    const iface = setLength(setName(function (...args) {
      if (!new.target) throw new TypeError(`Failed to construct '${name}': Please use the 'new' operator, this DOM object constructor cannot be called as a function.`);
      if (args[0] === INTERNAL) return;
      if (!spec.construct) throw new TypeError(`Failed to construct '${name}': Illegal constructor`);
      if (args.length < (spec.length || 0)) throw missing(name, 'constructor', spec.length, args.length);
      return spec.construct(new.target, ...args);
    }, name), spec.length || 0);
    if (parent) Object.setPrototypeOf(iface, parent);
    const proto = Object.create(parent ? parent.prototype : (spec.protoParent || Object.prototype));
    Object.defineProperty(iface, 'prototype', { value: proto, writable: false, enumerable: false, configurable: false });
    Object.defineProperty(proto, 'constructor', { value: iface, writable: true, enumerable: false, configurable: true });
    Object.defineProperty(proto, Symbol.toStringTag, { value: name, writable: false, enumerable: false, configurable: true });
    for (const [c, v] of Object.entries(spec.consts || {})) {
      Object.defineProperty(iface, c, { value: v, enumerable: true });
      Object.defineProperty(proto, c, { value: v, enumerable: true });
    }
    const home = spec.global && exposure.includes(spec.global) ? G : proto;
    for (const [a, d] of Object.entries(spec.attrs || {})) {
      if (hidden(d)) continue;
      const thisOf = (t) => (t === undefined || t === null ? G : t);
      const get = function () { const t = thisOf(this); return d.get.call(t, brandCheck(t, name, a)); };
      const desc = { get: setName(get, `get ${a}`), enumerable: true, configurable: true };
      if (d.set) desc.set = setName(function (v) { const t = thisOf(this); d.set.call(t, brandCheck(t, name, a), v); }, `set ${a}`);
      Object.defineProperty(home, a, desc);
    }
    for (const [o, d] of Object.entries(spec.ops || {})) {
      if (hidden(d)) continue;
      const thisOf = (t) => (t === undefined || t === null ? G : t);
      const op = d.promise
        ? function (...args) {
            try { const t = thisOf(this); const s = brandCheck(t, name, o); if (args.length < d.length) throw missing(name, o, d.length, args.length); return Promise.resolve(d.fn.call(t, s, ...args)); } catch (e) { return Promise.reject(e); }
          }
        : function (...args) {
            const t = thisOf(this); const s = brandCheck(t, name, o); if (args.length < d.length) throw missing(name, o, d.length, args.length); return d.fn.call(t, s, ...args);
          };
      Object.defineProperty(home, o, { value: setLength(setName(op, o), d.length), writable: true, enumerable: true, configurable: true });
    }
    for (const [o, d] of Object.entries(spec.statics || {})) {
      Object.defineProperty(iface, o, { value: setLength(setName(d.fn, o), d.length), writable: true, enumerable: true, configurable: true });
    }
    interfaces[name] = iface;
    if (exposed.some((e) => exposure.includes(e)) && !hidden(spec)) {
      Object.defineProperty(G, name, { value: iface, writable: true, enumerable: false, configurable: true });
    }
    return iface;
  }
  // Makes `obj` an instance of `name` (and its ancestors) with the given internal state.
  function adopt(obj, name, state) {
    const brands = new Set();
    for (let i = interfaces[name]; i && i !== Function.prototype; i = Object.getPrototypeOf(i)) brands.add(i.name);
    slots.set(obj, Object.assign(state || {}, { brands }));
    return obj;
  }
  function create(name, state) { return adopt(Object.create(interfaces[name].prototype), name, state); }

  // ---- DOMException -------------------------------------------------------------------------
  const legacyCodes = {
    IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
    NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
    SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15,
    TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, URLMismatchError: 21,
    QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
  };
  const codeConsts = {
    INDEX_SIZE_ERR: 1, DOMSTRING_SIZE_ERR: 2, HIERARCHY_REQUEST_ERR: 3, WRONG_DOCUMENT_ERR: 4,
    INVALID_CHARACTER_ERR: 5, NO_DATA_ALLOWED_ERR: 6, NO_MODIFICATION_ALLOWED_ERR: 7, NOT_FOUND_ERR: 8,
    NOT_SUPPORTED_ERR: 9, INUSE_ATTRIBUTE_ERR: 10, INVALID_STATE_ERR: 11, SYNTAX_ERR: 12,
    INVALID_MODIFICATION_ERR: 13, NAMESPACE_ERR: 14, INVALID_ACCESS_ERR: 15, VALIDATION_ERR: 16,
    TYPE_MISMATCH_ERR: 17, SECURITY_ERR: 18, NETWORK_ERR: 19, ABORT_ERR: 20, URL_MISMATCH_ERR: 21,
    QUOTA_EXCEEDED_ERR: 22, TIMEOUT_ERR: 23, INVALID_NODE_TYPE_ERR: 24, DATA_CLONE_ERR: 25,
  };
  define('DOMException', {
    exposed: ['*'], length: 0, protoParent: Error.prototype, consts: codeConsts,
    construct(nt, message = '', name = 'Error') {
      const o = adopt(Object.create(nt.prototype), 'DOMException', { message: toDOMString(message), name: toDOMString(name) });
      const stack = new Error(slot(o).message).stack;
      Object.defineProperty(o, 'stack', { value: stack, writable: true, configurable: true });
      return o;
    },
    attrs: {
      name: { get: (s) => s.name },
      message: { get: (s) => s.message },
      code: { get: (s) => legacyCodes[s.name] || 0 },
    },
  });
  function domException(name, message) { return new interfaces.DOMException(message, name); }
  function engineError(e) { return e.name === 'TypeError' ? new TypeError(e.message) : domException(e.name, e.message); }

  // ---- pending native calls -------------------------------------------------------------------
  let nextCall = 1;
  const calls = new Map();
  function call(fn, ...args) {
    return new Promise((resolve, reject) => {
      const id = nextCall++;
      calls.set(id, { resolve, reject });
      fn(id, ...args);
    });
  }

  // A message to the host as JSON, with lone surrogates written as U+XXXX so that the text is
  // valid Unicode for the Rust side.
  const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
  function hostJSON(value) {
    return JSON.stringify(value === undefined ? null : value, (k, v) => (typeof v === 'string'
      ? v.replace(loneSurrogate, (c) => `U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`) : v));
  }

  // ---- Events --------------------------------------------------------------------------------
  define('Event', {
    exposed: ['*'], length: 1,
    consts: { NONE: 0, CAPTURING_PHASE: 1, AT_TARGET: 2, BUBBLING_PHASE: 3 },
    construct(nt, type, init) { return initEvent(Object.create(nt.prototype), 'Event', type, init, false); },
    attrs: {
      type: { get: (s) => s.type }, target: { get: (s) => s.target }, srcElement: { get: (s) => s.target },
      currentTarget: { get: (s) => s.currentTarget }, eventPhase: { get: (s) => s.phase },
      bubbles: { get: (s) => s.bubbles }, cancelable: { get: (s) => s.cancelable },
      defaultPrevented: { get: (s) => s.canceled }, composed: { get: (s) => s.composed },
      timeStamp: { get: (s) => s.timeStamp },
      cancelBubble: { get: (s) => s.stop, set: (s, v) => { if (v) s.stop = true; } },
      returnValue: { get: (s) => !s.canceled, set: (s, v) => { if (!v && s.cancelable) s.canceled = true; } },
    },
    ops: {
      composedPath: { length: 0, fn: (s) => (s.currentTarget ? [s.currentTarget] : []) },
      stopPropagation: { length: 0, fn: (s) => { s.stop = true; } },
      stopImmediatePropagation: { length: 0, fn: (s) => { s.stop = s.stopImmediate = true; } },
      preventDefault: { length: 0, fn: (s) => { if (s.cancelable) s.canceled = true; } },
      initEvent: { length: 1, fn: (s, type, bubbles = false, cancelable = false) => { if (!s.dispatching) { s.type = toDOMString(type); s.bubbles = !!bubbles; s.cancelable = !!cancelable; } } },
    },
  });
  function dictionary(init, iface) {
    if (init === undefined || init === null) return {};
    if (typeof init !== 'object' && typeof init !== 'function') throw new TypeError(`Failed to construct '${iface}': The provided value is not of type '${iface}Init'.`);
    return init;
  }
  function initEvent(obj, iface, type, init, trusted, extra) {
    const d = dictionary(init, iface);
    adopt(obj, iface, Object.assign({
      type: toDOMString(type), bubbles: !!d.bubbles, cancelable: !!d.cancelable, composed: !!d.composed,
      target: null, currentTarget: null, phase: 0, canceled: false, stop: false, stopImmediate: false,
      dispatching: false, trusted, timeStamp: Date.now(),
    }, extra || {}));
    const isTrusted = setName(function () { return slot(this).trusted; }, 'get isTrusted');
    Object.defineProperty(obj, 'isTrusted', { get: isTrusted, enumerable: true, configurable: false });
    return obj;
  }

  define('EventTarget', {
    exposed: ['*'], length: 0,
    construct(nt) { return adopt(Object.create(nt.prototype), 'EventTarget', { listeners: new Map() }); },
    ops: {
      addEventListener: { length: 2, fn(s, type, callback, options) {
        if (callback === null || callback === undefined) return;
        type = toDOMString(type);
        const capture = typeof options === 'boolean' ? options : !!(options && options.capture);
        const once = !!(options && typeof options === 'object' && options.once);
        const list = s.listeners.get(type) || [];
        if (list.some((l) => l.callback === callback && l.capture === capture)) return;
        list.push({ callback, capture, once, removed: false });
        s.listeners.set(type, list);
      } },
      removeEventListener: { length: 2, fn(s, type, callback, options) {
        const capture = typeof options === 'boolean' ? options : !!(options && options.capture);
        const list = s.listeners.get(toDOMString(type)) || [];
        const i = list.findIndex((l) => l.callback === callback && l.capture === capture);
        if (i >= 0) { list[i].removed = true; list.splice(i, 1); }
      } },
      dispatchEvent: { length: 1, fn(s, event) {
        const e = brandCheck(event, 'Event', 'dispatchEvent');
        if (e.dispatching) throw domException('InvalidStateError', 'The event is already being dispatched.');
        e.trusted = false;
        return dispatch(this, event).notCanceled;
      } },
    },
  });
  // Dispatches `event` at `target` (no tree: the target is the whole path). Returns whether a
  // listener threw and whether the event was not canceled.
  function dispatch(target, event, reportingError) {
    const e = slot(event);
    const t = slot(target);
    e.dispatching = true; e.target = target; e.currentTarget = target; e.phase = 2;
    let threw = false;
    const list = (t.listeners.get(e.type) || []).slice();
    for (const l of list) {
      if (l.removed) continue;
      if (l.once) { const all = t.listeners.get(e.type); const i = all.indexOf(l); if (i >= 0) all.splice(i, 1); }
      try {
        if (typeof l.callback === 'function') l.callback.call(target, event);
        else if (l.callback && typeof l.callback.handleEvent === 'function') l.callback.handleEvent(event);
        else if (l.callback) throw new TypeError('handleEvent is not a function');
      } catch (err) {
        threw = true;
        try {
          if (reportingError) native.print('error', `Uncaught in an error listener: ${safeString(err)}`); else reportError(err);
        } catch (_) { /* nothing is left to report with (out of stack or memory): the listener threw, that is all */ }
      }
      if (e.stopImmediate) break;
    }
    e.dispatching = false; e.phase = 0; e.currentTarget = null; e.stop = false; e.stopImmediate = false;
    return { threw, notCanceled: !e.canceled };
  }
  // HTML's "report an exception": an ErrorEvent at the global (listeners, then `onerror` with
  // its five arguments); unless a handler canceled it, the console and the runner hear of it.
  function reportError(err) {
    const message = errorMessage(err);
    const ev = trustedEvent('ErrorEvent', 'error', { message, filename: info.href, lineno: 0, colno: 0, error: err });
    slot(ev).cancelable = true;
    let canceled = false;
    try { canceled = !dispatch(G, ev, true).notCanceled; } catch (_) { /* a listener cannot stop the report */ }
    if (typeof G.onerror === 'function') {
      try { if (G.onerror(message, info.href, 0, 0, err) === true) canceled = true; } catch (_) { /* ignored */ }
    }
    if (canceled) return;
    const text = safeString(err);
    const stack = err !== null && typeof err === 'object' ? safeGet(err, 'stack') : undefined;
    native.print('error', `Uncaught ${stack ? `${text}\n${safeString(stack)}` : text}`);
    native.uncaught(text);
  }
  // A thrown value as text, for reports. It never throws, whatever was thrown: a Symbol (which
  // `${}` refuses), an object whose toString throws or is missing, a Proxy whose traps throw.
  function safeString(v) {
    try { return typeof v === 'symbol' ? v.toString() : `${v}`; } catch (_) { /* try the tag */ }
    try { return Object.prototype.toString.call(v); } catch (_) { return '[object]'; }
  }
  function safeGet(obj, key) {
    try { return obj[key]; } catch (_) { return undefined; }
  }
  // The `message` of the ErrorEvent for `err`: `Name: message` for an error-like object.
  function errorMessage(err) {
    if (err !== null && typeof err === 'object') {
      let errorLike = false;
      try { errorLike = 'message' in err; } catch (_) { /* a Proxy's `has` threw */ }
      if (errorLike) return `${safeString(safeGet(err, 'name') || 'Error')}: ${safeString(safeGet(err, 'message'))}`;
    }
    return safeString(err);
  }
  // `on<type>` event handler attributes.
  function handlerAttr(type) {
    return {
      get: (s) => (s.handlers && s.handlers[type]) || null,
      set(s, v) {
        s.handlers = s.handlers || {};
        const had = s.handlers[type] !== undefined;
        s.handlers[type] = typeof v === 'function' || (v && typeof v === 'object') ? v : null;
        if (!had) {
          const self = this;
          interfaces.EventTarget.prototype.addEventListener.call(self, type, function (ev) {
            const h = s.handlers[type];
            if (typeof h === 'function') return h.call(self, ev);
          });
        }
      },
    };
  }

  define('ExtendableEvent', {
    parent: 'Event', exposed: ['ServiceWorker'], length: 1,
    construct(nt, type, init) { return initEvent(Object.create(nt.prototype), 'ExtendableEvent', type, init, false, { lifetime: 0 }); },
    ops: {
      waitUntil: { length: 1, fn(s, f) {
        if (!s.trusted || !s.lifetime) throw domException('InvalidStateError', 'The event is not trusted: waitUntil() may only be called on events the user agent dispatched.');
        const err = native.waitUntil(s.lifetime);
        if (err) throw engineError(err);
        const id = s.lifetime;
        Promise.resolve(f).then(() => native.lifetimeSettled(id, true), () => native.lifetimeSettled(id, false));
      } },
    },
  });
  define('SyncEvent', {
    parent: 'ExtendableEvent', exposed: ['ServiceWorker'], length: 2,
    construct(nt, type, init) {
      type = toDOMString(type);
      if (init === undefined || init === null) throw new TypeError("Failed to construct 'SyncEvent': required member tag is undefined.");
      const d = dictionary(init, 'SyncEvent');
      if (d.tag === undefined) throw new TypeError("Failed to construct 'SyncEvent': required member tag is undefined.");
      return initEvent(Object.create(nt.prototype), 'SyncEvent', type, d, false, { lifetime: 0, tag: toDOMString(d.tag), lastChance: !!d.lastChance });
    },
    attrs: { tag: { get: (s) => s.tag }, lastChance: { get: (s) => s.lastChance } },
  });
  // https://wicg.github.io/periodic-background-sync/#periodicsyncevent-interface
  define('PeriodicSyncEvent', {
    parent: 'ExtendableEvent', exposed: ['ServiceWorker'], length: 2,
    construct(nt, type, init) {
      type = toDOMString(type);
      if (init === undefined || init === null) throw new TypeError("Failed to construct 'PeriodicSyncEvent': required member tag is undefined.");
      const d = dictionary(init, 'PeriodicSyncEvent');
      if (d.tag === undefined) throw new TypeError("Failed to construct 'PeriodicSyncEvent': required member tag is undefined.");
      return initEvent(Object.create(nt.prototype), 'PeriodicSyncEvent', type, d, false, { lifetime: 0, tag: toDOMString(d.tag) });
    },
    attrs: { tag: { get: (s) => s.tag } },
  });
  define('MessageEvent', {
    parent: 'Event', exposed: ['Window', 'Worker'], length: 1,
    construct(nt, type, init) {
      const d = dictionary(init, 'MessageEvent');
      return initEvent(Object.create(nt.prototype), 'MessageEvent', type, d, false, {
        data: d.data === undefined ? null : d.data, origin: toDOMString(d.origin === undefined ? '' : d.origin),
        lastEventId: toDOMString(d.lastEventId === undefined ? '' : d.lastEventId), source: d.source === undefined ? null : d.source, ports: Object.freeze([]),
      });
    },
    attrs: {
      data: { get: (s) => s.data }, origin: { get: (s) => s.origin }, lastEventId: { get: (s) => s.lastEventId },
      source: { get: (s) => s.source }, ports: { get: (s) => s.ports },
    },
  });
  define('ErrorEvent', {
    parent: 'Event', exposed: ['Window', 'Worker'], length: 1,
    construct(nt, type, init) {
      const d = dictionary(init, 'ErrorEvent');
      return initEvent(Object.create(nt.prototype), 'ErrorEvent', type, d, false, {
        message: toDOMString(d.message === undefined ? '' : d.message), filename: toDOMString(d.filename === undefined ? '' : d.filename),
        lineno: d.lineno >>> 0, colno: d.colno >>> 0, error: d.error,
      });
    },
    attrs: {
      message: { get: (s) => s.message }, filename: { get: (s) => s.filename }, lineno: { get: (s) => s.lineno },
      colno: { get: (s) => s.colno }, error: { get: (s) => s.error },
    },
  });
  function trustedEvent(iface, type, extra) {
    return initEvent(Object.create(interfaces[iface].prototype), iface, type, undefined, true, extra);
  }

  // ---- URL and location -----------------------------------------------------------------------
  const urlParts = ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash'];
  const urlAttrs = {};
  for (const p of urlParts) urlAttrs[p] = { get: (s) => s.parts[p] };
  define('URL', {
    exposed: ['*'], length: 1,
    construct(nt, url, base) {
      const parts = native.parseUrl(toDOMString(url), base === undefined ? null : toDOMString(base));
      if (!parts) throw new TypeError(`Failed to construct 'URL': Invalid URL`);
      return adopt(Object.create(nt.prototype), 'URL', { parts });
    },
    attrs: urlAttrs,
    ops: { toString: { length: 0, fn: (s) => s.parts.href }, toJSON: { length: 0, fn: (s) => s.parts.href } },
    statics: { canParse: { length: 1, fn: (url, base) => !!native.parseUrl(toDOMString(url), base === undefined ? null : toDOMString(base)) } },
  });
  const locationIface = kind === 'window' ? 'Location' : 'WorkerLocation';
  define(locationIface, {
    exposed: kind === 'window' ? ['Window'] : ['Worker'], attrs: urlAttrs,
    ops: { toString: { length: 0, fn: (s) => s.parts.href } },
  });
  const location = create(locationIface, { parts: native.parseUrl(info.href, null) });

  // ---- Permissions --------------------------------------------------------------------------
  define('PermissionStatus', {
    parent: 'EventTarget', exposed: ['Window', 'Worker'],
    attrs: { state: { get: (s) => s.state() }, name: { get: (s) => s.name }, onchange: handlerAttr('change') },
  });
  define('Permissions', {
    exposed: ['Window', 'Worker'],
    ops: { query: { length: 1, promise: true, fn(s, descriptor) {
      if (!descriptor || typeof descriptor !== 'object') throw new TypeError("Failed to execute 'query' on 'Permissions': parameter 1 is not of type 'PermissionDescriptor'.");
      const name = toDOMString(descriptor.name);
      if (name !== 'background-sync' && name !== 'periodic-background-sync') throw new TypeError(`Failed to execute 'query' on 'Permissions': The provided value '${name}' is not a valid enum value of type PermissionName.`);
      return create('PermissionStatus', { listeners: new Map(), name, state: () => native.permissionState(name) });
    } } },
  });

  // ---- Service workers ------------------------------------------------------------------------
  const workers = new Map();        // registration id -> ServiceWorker object
  const registrations = new Map();  // registration id -> ServiceWorkerRegistration object
  function workerFor(d) {
    if (!d) return null;
    let w = workers.get(d.id);
    if (!w) {
      w = create('ServiceWorker', { listeners: new Map(), id: d.id, scriptURL: d.scriptURL, state: d.state });
      workers.set(d.id, w);
    }
    return w;
  }
  function registrationFor(d) {
    let r = registrations.get(d.id);
    if (!r) {
      r = create('ServiceWorkerRegistration', { listeners: new Map(), id: d.id, scope: d.scope, scriptURL: d.scriptURL, state: d.state, sync: null });
      registrations.set(d.id, r);
    }
    const s = slot(r);
    s.state = d.state; s.scriptURL = d.scriptURL;
    workerFor(d);
    return r;
  }
  function regWorker(s, which) {
    const w = workers.get(s.id);
    if (!w || slot(w).state === 'redundant') return null;
    const st = slot(w).state;
    if (which === 'installing') return st === 'parsed' || st === 'installing' ? w : null;
    if (which === 'waiting') return st === 'installed' ? w : null;
    return st === 'activating' || st === 'activated' ? w : null;
  }
  define('ServiceWorkerRegistration', {
    parent: 'EventTarget', exposed: ['Window', 'Worker'],
    attrs: {
      installing: { get: (s) => regWorker(s, 'installing') },
      waiting: { get: (s) => regWorker(s, 'waiting') },
      active: { get: (s) => regWorker(s, 'active') },
      scope: { get: (s) => s.scope },
      updateViaCache: { get: () => 'imports' },
      // ServiceWorkerRegistration is [SecureContext] (Service Workers), and so are the members
      // of its partial interfaces, this one (Background Sync's) among them.
      sync: { secureContext: true, get: (s) => s.sync || (s.sync = create('SyncManager', { id: s.id })) },
      periodicSync: { secureContext: true, get: (s) => s.periodicSync || (s.periodicSync = create('PeriodicSyncManager', { id: s.id })) },
      onupdatefound: handlerAttr('updatefound'),
    },
    ops: {
      update: { length: 0, promise: true, fn() { return this; } },
      unregister: { length: 0, promise: true, fn: (s) => call(native.unregister, s.id) },
    },
  });
  define('ServiceWorker', {
    parent: 'EventTarget', exposed: ['Window', 'Worker'],
    attrs: { scriptURL: { get: (s) => s.scriptURL }, state: { get: (s) => s.state }, onstatechange: handlerAttr('statechange'), onerror: handlerAttr('error') },
    ops: { postMessage: { length: 1, fn(s, message) { native.postToWorker(s.id, JSON.stringify(message === undefined ? null : message)); } } },
  });
  let ready = null;
  let readyResolve = null;
  define('ServiceWorkerContainer', {
    parent: 'EventTarget', exposed: ['Window', 'Worker'],
    attrs: {
      controller: { get: () => null },
      ready: { get() { if (!ready) { ready = new Promise((r) => { readyResolve = r; }); native.watchReady(); } return ready; } },
      oncontrollerchange: handlerAttr('controllerchange'), onmessage: handlerAttr('message'), onmessageerror: handlerAttr('messageerror'),
    },
    ops: {
      register: { length: 1, promise: true, fn(s, url, options) {
        const scope = options && options.scope !== undefined ? toDOMString(options.scope) : null;
        return call(native.registerServiceWorker, toDOMString(url), scope).then(registrationFor);
      } },
      getRegistration: { length: 0, promise: true, fn(s, url = '') {
        return call(native.getRegistration, toDOMString(url)).then((d) => (d ? registrationFor(d) : undefined));
      } },
      getRegistrations: { length: 0, promise: true, fn() {
        return call(native.getRegistrations).then((list) => list.map(registrationFor));
      } },
      startMessages: { length: 0, fn() {} },
    },
  });

  // ---- SyncManager (https://wicg.github.io/background-sync/spec/#syncmanager-interface) -------
  // [SecureContext] as components/idl/webidl/background-sync.webidl declares it (Chromium's).
  define('SyncManager', {
    exposed: ['Window', 'Worker'], secureContext: true,
    ops: {
      register: { length: 1, promise: true, fn(s, tag) {
        tag = toDOMString(tag);
        // Chromium: a tag over the cap in bytes of UTF-8 is refused. Each code unit is at least
        // one byte, so a tag with more units than the cap has bytes is refused before its units
        // are copied out (a 100 MB tag would take seconds and GBs).
        // Note: this refusal comes before the engine's other checks (active worker, window
        // client), which an over-long tag otherwise meets first.
        if (tag.length > info.maxTagBytes) return call(native.tagTooLong, tag.length);
        return call(native.register, s.id, units(tag)).then(() => undefined);
      } },
      getTags: { length: 0, promise: true, fn(s) { return call(native.getTags, s.id).then((tags) => tags.map((t) => (typeof t === 'string' ? t : fromUnits(t)))); } },
    },
  });

  // ---- PeriodicSyncManager (https://wicg.github.io/periodic-background-sync/#periodicsyncmanager-interface)
  // BackgroundSyncOptions.minInterval: [EnforceRange] unsigned long long, default 0.
  function minIntervalOf(options) {
    const fail = (why) => new TypeError(`Failed to execute 'register' on 'PeriodicSyncManager': ${why}`);
    if (options === undefined || options === null) return 0;
    if (typeof options !== 'object' && typeof options !== 'function') throw fail("parameter 2 is not of type 'BackgroundSyncOptions'.");
    const v = options.minInterval;
    if (v === undefined) return 0;
    if (typeof v === 'bigint' || typeof v === 'symbol') throw fail(`Cannot convert a ${typeof v} value to a number.`);
    const n = Number(v);
    if (!Number.isFinite(n)) throw fail('Value is not a finite number.');
    const t = Math.trunc(n);
    if (t < 0 || t > Number.MAX_SAFE_INTEGER) throw fail('Value is outside the \'unsigned long long\' value range.');
    return t;
  }
  define('PeriodicSyncManager', {
    exposed: ['Window', 'Worker'], secureContext: true,
    ops: {
      register: { length: 1, promise: true, fn(s, tag, options) {
        tag = toDOMString(tag);
        const ms = minIntervalOf(options);
        if (tag.length > info.maxTagBytes) return call(native.tagTooLong, tag.length);
        return call(native.periodicRegister, s.id, units(tag), ms).then(() => undefined);
      } },
      getTags: { length: 0, promise: true, fn(s) { return call(native.periodicGetTags, s.id).then((tags) => tags.map(fromUnits)); } },
      unregister: { length: 1, promise: true, fn(s, tag) { return call(native.periodicUnregister, s.id, units(toDOMString(tag))).then(() => undefined); } },
    },
  });

  // ---- Clients (service worker) ---------------------------------------------------------------
  define('Client', {
    exposed: ['ServiceWorker'],
    attrs: { url: { get: (s) => s.url }, id: { get: (s) => s.id }, type: { get: () => 'window' }, frameType: { get: (s) => s.frameType || 'top-level' } },
    ops: { postMessage: { length: 1, fn(s, message) {
      if (s.realm < 0) native.hostReport(hostJSON(message));
      else native.postToClient(s.realm, JSON.stringify(message === undefined ? null : message));
    } } },
  });
  define('WindowClient', { parent: 'Client', exposed: ['ServiceWorker'], attrs: { focused: { get: () => true }, visibilityState: { get: () => 'visible' } } });
  define('Clients', {
    exposed: ['ServiceWorker'],
    ops: {
      matchAll: { length: 0, promise: true, fn(s, options) {
        const all = !!(options && options.includeUncontrolled);
        return all ? native.windowClients().map((c) => create('WindowClient', c)) : [];
      } },
      get: { length: 1, promise: true, fn: () => undefined },
      claim: { length: 0, promise: true, fn: () => undefined },
    },
  });

  // ---- Dedicated workers (HTML § 10.2.6, the Worker interface) ----------------------------------
  // A worker of the page's origin and storage partition; messages are JSON-cloned.
  const dedicatedWorkers = new Map(); // handle -> Worker object
  define('Worker', {
    parent: 'EventTarget', exposed: ['Window', 'DedicatedWorker'], length: 1,
    construct(nt, scriptURL) {
      let handle;
      try {
        handle = native.startWorker(toDOMString(scriptURL));
      } catch (e) {
        throw e && typeof e.name === 'string' && !(e instanceof Error) ? domException(e.name, e.message) : e;
      }
      const w = adopt(Object.create(nt.prototype), 'Worker', { listeners: new Map(), handle });
      dedicatedWorkers.set(handle, w);
      return w;
    },
    attrs: { onmessage: handlerAttr('message'), onmessageerror: handlerAttr('messageerror'), onerror: handlerAttr('error') },
    ops: {
      postMessage: { length: 1, fn(s, message) { native.postToDedicated(s.handle, JSON.stringify(message === undefined ? null : message)); } },
      terminate: { length: 0, fn(s) { dedicatedWorkers.delete(s.handle); native.terminateDedicated(s.handle); } },
    },
  });

  // ---- Navigator ------------------------------------------------------------------------------
  const navIface = kind === 'window' ? 'Navigator' : 'WorkerNavigator';
  let permissions = null;
  let container = null;
  define(navIface, {
    exposed: kind === 'window' ? ['Window'] : ['Worker'],
    attrs: {
      onLine: { get: () => native.online() },
      userAgent: { get: () => 'bgsync-quickjs' },
      permissions: { get: () => permissions || (permissions = create('Permissions', {})) },
      serviceWorker: { get: () => container || (container = create('ServiceWorkerContainer', { listeners: new Map() })) },
    },
  });
  const navigator = create(navIface, {});

  // ---- The document of a window: the elements of its markup, its loading state ---------------
  // No tree and no rendering: a page is its elements in markup order (what a harness looks up
  // by tag or id), the script that is running, and HTML's loading lifecycle (readyState,
  // DOMContentLoaded, load), which the user agent drives as it loads the page.
  let document = null;
  if (kind === 'window') {
    define('Node', {
      parent: 'EventTarget', exposed: ['Window'],
      attrs: {
        nodeName: { get: (s) => s.nodeName },
        ownerDocument: { get: (s) => (s.nodeName === '#document' ? null : document) },
        firstChild: { get: (s) => (s.text ? s.text : null) },
        textContent: { get: (s) => (s.nodeName === '#document' ? null : s.text ? slot(s.text).data : '') },
      },
    });
    define('Text', { parent: 'Node', exposed: ['Window'], attrs: { data: { get: (s) => s.data }, nodeValue: { get: (s) => s.data } } });
    const attr = (name) => ({ get: (s) => (s.attrs[name] === undefined ? '' : s.attrs[name]) });
    define('Element', {
      parent: 'Node', exposed: ['Window'],
      attrs: { localName: { get: (s) => s.localName }, tagName: { get: (s) => s.localName.toUpperCase() }, id: attr('id') },
      ops: {
        getAttribute: { length: 1, fn: (s, n) => { const v = s.attrs[toDOMString(n).toLowerCase()]; return v === undefined ? null : v; } },
        hasAttribute: { length: 1, fn: (s, n) => s.attrs[toDOMString(n).toLowerCase()] !== undefined },
      },
    });
    define('HTMLElement', { parent: 'Element', exposed: ['Window'], attrs: { title: attr('title') } });
    define('HTMLScriptElement', {
      parent: 'HTMLElement', exposed: ['Window'],
      attrs: {
        src: { get: (s) => (s.attrs.src === undefined ? '' : native.parseUrl(s.attrs.src, info.href).href) },
        text: { get: (s) => (s.text ? slot(s.text).data : '') }, onerror: handlerAttr('error'), onload: handlerAttr('load'),
      },
    });
    define('HTMLMetaElement', { parent: 'HTMLElement', exposed: ['Window'], attrs: { name: attr('name'), content: attr('content') } });
    define('HTMLTitleElement', { parent: 'HTMLElement', exposed: ['Window'], attrs: { text: { get: (s) => (s.text ? slot(s.text).data : '') } } });
    define('HTMLDivElement', { parent: 'HTMLElement', exposed: ['Window'] });
    const elementsOf = (s, tag) => s.elements.filter((e) => tag === '*' || slot(e).localName === tag);
    define('Document', {
      parent: 'Node', exposed: ['Window'],
      attrs: {
        readyState: { get: (s) => s.readyState },
        currentScript: { get: (s) => s.currentScript },
        title: { get: (s) => { const t = elementsOf(s, 'title')[0]; return t ? slot(t).text ? slot(slot(t).text).data.trim() : '' : ''; } },
        URL: { get: () => info.href }, documentURI: { get: () => info.href },
        defaultView: { get: () => G },
        documentElement: { get: () => null }, head: { get: () => null }, body: { get: () => null },
        onreadystatechange: handlerAttr('readystatechange'),
      },
      ops: {
        getElementsByTagName: { length: 1, fn: (s, tag) => Object.freeze(elementsOf(s, toDOMString(tag).toLowerCase())) },
        getElementById: { length: 1, fn: (s, id) => s.elements.find((e) => slot(e).attrs.id === toDOMString(id)) || null },
      },
    });
    document = create('Document', { listeners: new Map(), nodeName: '#document', readyState: 'loading', currentScript: null, elements: [] });
  }
  const elementInterface = { script: 'HTMLScriptElement', meta: 'HTMLMetaElement', title: 'HTMLTitleElement', div: 'HTMLDivElement' };
  function setReadyState(state) {
    slot(document).readyState = state;
    dispatch(document, trustedEvent('Event', 'readystatechange'));
  }

  // ---- Globals --------------------------------------------------------------------------------
  const globalAttrs = {
    self: { get: () => G },
    location: { get: () => location },
    navigator: { get: () => navigator },
    origin: { get: () => info.origin },
    isSecureContext: { get: () => info.isSecureContext },
    onerror: { get: (s) => s.onerror || null, set: (s, v) => { s.onerror = v; } },
    ononline: handlerAttr('online'), onoffline: handlerAttr('offline'),
  };
  const timers = new Map();
  let nextTimer = 1;
  function setTimer(handler, timeout, args, repeat) {
    const id = nextTimer++;
    timers.set(id, { handler, args, repeat });
    native.setTimer(id, Math.max(0, Number(timeout) || 0), repeat);
    return id;
  }
  const globalOps = {
    setTimeout: { length: 1, fn: (s, h, t, ...a) => setTimer(h, t, a, false) },
    setInterval: { length: 1, fn: (s, h, t, ...a) => setTimer(h, t, a, true) },
    clearTimeout: { length: 0, fn(s, id = 0) { if (timers.delete(id)) native.clearTimer(id); } },
    clearInterval: { length: 0, fn(s, id = 0) { if (timers.delete(id)) native.clearTimer(id); } },
    queueMicrotask: { length: 1, fn(s, cb) {
      if (typeof cb !== 'function') throw new TypeError("Failed to execute 'queueMicrotask': parameter 1 is not of type 'Function'.");
      Promise.resolve().then(() => { try { cb(); } catch (e) { reportError(e); } });
    } },
    reportError: { length: 1, fn: (s, e) => reportError(e) },
  };
  define('WindowOrWorkerGlobalScope', { exposed: [] });
  if (kind === 'window') {
    // A top-level browsing context of its own (no parent, no opener), or a frame nested in a
    // window of the user agent, whose parent and top are windows of other realms: script sees
    // them as opaque objects (no DOM to reach across, as across origins).
    const elsewhere = info.topLevel ? G : Object.freeze(Object.create(null));
    define('Window', {
      parent: 'EventTarget', exposed: ['Window'], global: 'Window',
      attrs: Object.assign({
        window: { get: () => G }, document: { get: () => document }, parent: { get: () => elsewhere }, top: { get: () => elsewhere },
        frames: { get: () => G }, opener: { get: () => null }, length: { get: () => 0 },
        onload: handlerAttr('load'), onmessage: handlerAttr('message'),
      }, globalAttrs),
      ops: globalOps,
    });
  } else {
    define('WorkerGlobalScope', { parent: 'EventTarget', exposed: ['Worker'], global: 'Worker', attrs: globalAttrs, ops: Object.assign({ importScripts: { length: 0, fn(s, ...urls) { for (const u of urls) native.importScript(toDOMString(u)); } } }, globalOps) });
    if (kind === 'worker') {
      // postMessage goes to the Worker object of the page that started it (JSON-cloned), or,
      // in a worker the host opened itself, to the host.
      define('DedicatedWorkerGlobalScope', { parent: 'WorkerGlobalScope', exposed: ['DedicatedWorker'], global: 'DedicatedWorker', attrs: { name: { get: () => '' }, onmessage: handlerAttr('message') }, ops: { postMessage: { length: 1, fn(s, message) {
        if (info.hasParent) native.postToParent(JSON.stringify(message === undefined ? null : message));
        else native.hostReport(hostJSON(message));
      } }, close: { length: 0, fn() {} } } });
    } else {
      define('ServiceWorkerGlobalScope', {
        parent: 'WorkerGlobalScope', exposed: ['ServiceWorker'], global: 'ServiceWorker',
        attrs: {
          clients: { get: (s) => s.clients || (s.clients = create('Clients', {})) },
          registration: { get: () => registrationFor(info.registration) },
          serviceWorker: { get: () => workerFor(info.registration) },
          oninstall: handlerAttr('install'), onactivate: handlerAttr('activate'),
          onmessage: handlerAttr('message'), onsync: handlerAttr('sync'), onperiodicsync: handlerAttr('periodicsync'),
        },
        ops: { skipWaiting: { length: 0, promise: true, fn: () => call(native.skipWaiting) } },
      });
    }
  }
  const globalIface = { window: 'Window', worker: 'DedicatedWorkerGlobalScope', serviceworker: 'ServiceWorkerGlobalScope' }[kind];
  Object.setPrototypeOf(G, interfaces[globalIface].prototype);
  // QuickJS names its global object 'global'; the interface's tag must show through.
  if (Object.getOwnPropertyDescriptor(G, Symbol.toStringTag)) delete G[Symbol.toStringTag];
  adopt(G, globalIface, { listeners: new Map() });
  Object.defineProperty(G, 'console', {
    value: Object.fromEntries(['log', 'info', 'warn', 'error', 'debug'].map((l) => [l, (...a) => native.print(l, a.map((x) => (typeof x === 'string' ? x : String(x))).join(' '))])),
    writable: true, enumerable: false, configurable: true,
  });

  // ---- fetch() of same-origin resources (enough for harnesses that load .idl files) ----------
  function response(r) {
    return {
      ok: r.status >= 200 && r.status < 300, status: r.status, url: r.url,
      text: () => Promise.resolve(r.body), json: () => Promise.resolve().then(() => JSON.parse(r.body)),
    };
  }
  Object.defineProperty(G, 'fetch', {
    value: setLength(setName(function fetch(input) {
      const url = typeof input === 'object' && input !== null && 'url' in input ? input.url : toDOMString(input);
      return call(native.fetch, url).then(response);
    }, 'fetch'), 1),
    writable: true, enumerable: true, configurable: true,
  });
  Object.defineProperty(G, '__bgsyncHostReport', { value: (message) => native.hostReport(hostJSON(message)), writable: false, enumerable: false, configurable: false });

  // ---- The conformance-test control surface (docs/testing.md) --------------------------------
  function logEntry(e) { const o = { type: e.type, tag: fromUnits(e.tag), time: e.time }; if (e.type === 'dispatched') o.lastChance = e.lastChance; if (e.type === 'completed' || e.type === 'periodic-completed') o.outcome = e.outcome; return o; }
  Object.defineProperty(G, 'bgsyncTest', {
    value: Object.freeze({
      setOnline: (online) => call(native.control, 'setOnline', !!online),
      advanceTime: (ms) => call(native.control, 'advanceTime', Math.max(0, Number(ms) || 0)),
      setWindowClient: (present) => call(native.control, 'setWindowClient', !!present),
      terminateWorker: () => call(native.control, 'terminateWorker', null),
      restart: () => call(native.control, 'restart', null),
      // DevTools' "Sync" button: a sync event with this tag and lastChance at the registration's
      // active worker now, online or not; resolves with 'fulfilled', 'rejected', 'timeout' or
      // 'terminated'. No registration changes.
      dispatchSyncEvent: (registration, tag, lastChance = false) => {
        const s = slot(registration);
        if (!s || !s.brands.has('ServiceWorkerRegistration')) return Promise.reject(new TypeError('dispatchSyncEvent: the first argument must be a ServiceWorkerRegistration'));
        return call(native.control, 'dispatchSyncEvent', [String(s.id), units(toDOMString(tag)).join(','), lastChance ? '1' : '0']);
      },
      idle: () => call(native.control, 'idle', null),
      log: () => call(native.control, 'log', null).then((l) => l.map(logEntry)),
      // Windows and frames of any served origin, and script run in them (docs/testing.md).
      openWindow: (url, options) => openRemote('openWindow', [], url, options),
      addIframe: (url, options) => openRemote('addIframe', ['-1'], url, options),
      // Chromium's site engagement of an origin: 'none', 'minimal', 'low', 'medium' or 'high'
      // (the default); it sets how often periodic syncs fire.
      setEngagement: (origin, level) => call(native.control, 'setEngagement', [toDOMString(origin), toDOMString(level)]).then(() => undefined),
      // Clear-Site-Data for an origin: its sync registrations, in every partition.
      clearSiteData: (origin) => call(native.control, 'clearSiteData', [toDOMString(origin)]).then(() => undefined),
    }),
    writable: false, enumerable: false, configurable: false,
  });
  // A window or frame bgsyncTest opened, as WPT's RemoteContextWrapper shapes it.
  function remoteHandle(d) {
    return Object.freeze({
      url: d.url,
      origin: d.origin,
      executeScript(fn, args = []) {
        if (typeof fn !== 'function') return Promise.reject(new TypeError('executeScript: the first argument must be a function'));
        let json;
        try { json = JSON.stringify(Array.from(args)); } catch (e) { return Promise.reject(e); }
        return call(native.control, 'executeScript', [d.id, String(fn), json]).then((r) => JSON.parse(r));
      },
      addIframe: (url, options) => openRemote('addIframe', [d.id], url, options),
      close: () => call(native.control, 'close', [d.id]).then(() => undefined),
    });
  }
  function openRemote(op, head, url, options) {
    const scripts = options && options.scripts ? Array.from(options.scripts, toDOMString) : [];
    return call(native.control, op, [...head, toDOMString(url), ...scripts]).then(remoteHandle);
  }
  Object.defineProperty(G, '__bgsyncRemoteDone', { value: (id, ok, payload, name) => native.remoteDone(id, ok, String(payload), String(name)), writable: false, enumerable: false, configurable: false });

  function setPermission(descriptor, state) {
    const name = descriptor && toDOMString(descriptor.name);
    if (name !== 'background-sync' && name !== 'periodic-background-sync') return Promise.reject(new TypeError(`unsupported permission ${name}`));
    if (!['granted', 'denied', 'prompt'].includes(state)) return Promise.reject(new TypeError(`invalid permission state ${state}`));
    return call(native.control, 'setPermission', [name, state]).then(() => undefined);
  }
  const builtInDriver = { set_permission: setPermission, in_automation: true };
  Object.defineProperty(builtInDriver, 'bgsyncBuiltIn', { value: true });
  Object.defineProperty(G, 'test_driver_internal', { value: builtInDriver, writable: true, configurable: true });
  // For /resources/testdriver-vendor.js after WPT's own testdriver.js: its internal
  // set_permission takes {descriptor, state}.
  Object.defineProperty(G, '__bgsyncSetPermission', { value: (params) => setPermission(params && params.descriptor, params && params.state), writable: false, enumerable: false, configurable: false });
  if (!G.test_driver) Object.defineProperty(G, 'test_driver', { value: { set_permission: (d, s) => setPermission(d, s) }, writable: true, configurable: true });

  // ---- Hooks Rust calls ----------------------------------------------------------------------
  function fireLifetimeEvent(iface, type, lifetime, extra) {
    // The dispatch is over however it ends: were it left open, the event would wait for its
    // time limit instead of counting as a listener that threw.
    let threw = true;
    try {
      threw = dispatch(G, trustedEvent(iface, type, Object.assign({ lifetime }, extra || {}))).threw;
    } finally {
      native.dispatchFinished(lifetime, threw);
    }
  }
  return {
    deliver(id, ok, value) {
      const c = calls.get(id);
      if (!c) return;
      calls.delete(id);
      if (ok) c.resolve(value); else c.reject(engineError(value));
    },
    timer(id) {
      const t = timers.get(id);
      if (!t) return;
      if (!t.repeat) timers.delete(id);
      try { if (typeof t.handler === 'function') t.handler(...t.args); else (0, eval)(`${t.handler}`); } catch (e) { reportError(e); }
    },
    sync(lifetime, tagUnits, lastChance) { fireLifetimeEvent('SyncEvent', 'sync', lifetime, { tag: fromUnits(tagUnits), lastChance }); },
    periodicsync(lifetime, tagUnits) { fireLifetimeEvent('PeriodicSyncEvent', 'periodicsync', lifetime, { tag: fromUnits(tagUnits) }); },
    lifecycle(type, lifetime) { fireLifetimeEvent('ExtendableEvent', type, lifetime); },
    message(json, source) {
      const data = JSON.parse(json);
      if (kind === 'worker') {
        dispatch(G, trustedEvent('MessageEvent', 'message', { data, origin: '', lastEventId: '', source: null, ports: Object.freeze([]) }));
      } else if (kind === 'serviceworker') {
        const client = create('WindowClient', source);
        dispatch(G, trustedEvent('MessageEvent', 'message', { data, origin: info.origin, lastEventId: '', source: client, ports: Object.freeze([]) }));
      } else {
        const target = G.navigator.serviceWorker;
        dispatch(target, trustedEvent('MessageEvent', 'message', { data, origin: info.origin, lastEventId: '', source: workerFor(source), ports: Object.freeze([]) }));
      }
    },
    workerState(d) {
      const w = workerFor(d);
      const s = slot(w);
      if (s.state === d.state) return;
      s.state = d.state;
      registrationFor(d);
      dispatch(w, trustedEvent('Event', 'statechange'));
    },
    ready(d) { if (readyResolve) { readyResolve(registrationFor(d)); readyResolve = null; } },
    workerMessage(handle, json) {
      const w = dedicatedWorkers.get(handle);
      if (w) dispatch(w, trustedEvent('MessageEvent', 'message', { data: JSON.parse(json), origin: '', lastEventId: '', source: null, ports: Object.freeze([]) }));
    },
    workerError(handle, message) {
      const w = dedicatedWorkers.get(handle);
      if (w) dispatch(w, trustedEvent('Event', 'error', { message }));
    },
    network(online) { dispatch(G, trustedEvent('Event', online ? 'online' : 'offline')); },
    // Page loading (UserAgent::load_page).
    insertElement(tag, attrs, text) {
      const s = { listeners: new Map(), nodeName: tag.toUpperCase(), localName: tag, attrs, text: null };
      if (text !== null && text !== undefined) s.text = create('Text', { listeners: new Map(), nodeName: '#text', data: text });
      const e = create(elementInterface[tag] || 'HTMLElement', s);
      slot(document).elements.push(e);
      return slot(document).elements.length - 1;
    },
    setCurrentScript(index) { slot(document).currentScript = index < 0 ? null : slot(document).elements[index]; },
    scriptFailed(index) { const e = slot(document).elements[index]; if (e) dispatch(e, trustedEvent('Event', 'error')); },
    reportException(err) { reportError(err); },
    documentParsed() { setReadyState('interactive'); },
    domContentLoaded() { dispatch(document, trustedEvent('Event', 'DOMContentLoaded')); },
    windowLoaded() { setReadyState('complete'); dispatch(G, trustedEvent('Event', 'load')); },
  };
})
