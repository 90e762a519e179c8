// Service worker: shows the content-free alert. The alert has only counts, so the
// notification says how many messages came, never who sent them or what they say.
self.addEventListener("push", (event) => {
  let alert = {};
  try { alert = event.data ? event.data.json() : {}; } catch (e) { alert = {}; }
  const body = alert.test ? "Test alert: alerts reach this browser."
    : `${alert.new || 0} new in ${alert.mailbox || "your mailbox"} (${alert.unseen || 0} unread)`;
  event.waitUntil(self.registration.showNotification("New mail", {
    body, tag: `${alert.account}/${alert.mailbox}`, renotify: true,
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((wins) =>
    wins.length ? wins[0].focus() : self.clients.openWindow("/")));
});
