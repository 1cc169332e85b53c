// The mail app's page script, as a web developer writes it: compose offline, let Background
// Sync send the mail when the network returns. (Run by tests/outbox.rs.)
async function composeAndSend(text) {
  const registration = await navigator.serviceWorker.ready;
  // Keep the message where the service worker can find it.
  registration.active.postMessage({ type: 'queue', text });
  try {
    await registration.sync.register('send-mail');
    return 'queued';
  } catch (e) {
    // No Background Sync (or not allowed): send now, in the page.
    return `not queued: ${e.name}`;
  }
}

async function main() {
  await navigator.serviceWorker.register('sw.js');
  const registration = await navigator.serviceWorker.ready;
  const delivered = new Promise((resolve) => {
    navigator.serviceWorker.addEventListener('message', (event) => {
      if (event.data.type === 'sent') resolve(event.data.messages);
    });
  });
  const status = await composeAndSend('Lunch on Friday?');
  const pending = await registration.sync.getTags();
  return { status, pending, delivered: await delivered };
}
