// The mail app's service worker: sends the outbox on `sync`; the mail server is down for the
// first two attempts.
const outbox = [];
let serverFailures = 2;

self.addEventListener('install', (event) => event.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (event) => event.waitUntil(Promise.resolve()));

self.addEventListener('message', (event) => {
  if (event.data.type === 'queue') outbox.push(event.data.text);
});

async function sendOutbox(lastChance) {
  if (serverFailures > 0) {
    serverFailures -= 1;
    throw new Error(`mail server answered 503${lastChance ? ' (last chance)' : ''}`);
  }
  const messages = outbox.splice(0);
  const clients = await self.clients.matchAll({ includeUncontrolled: true });
  for (const client of clients) client.postMessage({ type: 'sent', messages, lastChance });
}

self.addEventListener('sync', (event) => {
  if (event.tag === 'send-mail') event.waitUntil(sendOutbox(event.lastChance));
});
