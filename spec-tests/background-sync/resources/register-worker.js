// A dedicated worker that registers a sync for its page: it gets {scope, tag}, finds the
// service worker registration for the scope and registers the tag, then posts back 'ok' or the
// name of the exception.
'use strict';

self.onmessage = async (e) => {
  const { scope, tag } = e.data;
  try {
    const reg = await navigator.serviceWorker.getRegistration(scope);
    if (!reg) throw new Error(`no registration for ${scope}`);
    await reg.sync.register(tag);
    postMessage({ result: 'ok', origin: self.location.origin });
  } catch (err) {
    postMessage({ result: err.name, origin: self.location.origin });
  }
};
