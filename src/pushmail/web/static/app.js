// The settings page: sign in, list devices, subscribe this browser, edit rules.
// Every change carries X-Requested-With and is JSON, so the API knows it is not a
// cross-site form.
"use strict";
const $ = (id) => document.getElementById(id);
let me = null;
let rules = null;

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(method, path, body) {
  const init = { method, headers: { "X-Requested-With": "pushmail" }, credentials: "same-origin" };
  // The server takes a change only as JSON, even one without a body (CSRF rule).
  if (method !== "GET") init.headers["Content-Type"] = "application/json";
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) throw new Error((data && data.error) || resp.statusText);
  return data;
}

async function showSettings() {
  me = await api("GET", "/api/me");
  $("me").textContent = me.address;
  $("login").hidden = true;
  $("settings").hidden = false;
  await Promise.all([loadDevices(), loadRules()]);
}

async function loadDevices() {
  const devices = await api("GET", "/api/devices");
  const body = $("devices");
  body.replaceChildren();
  for (const d of devices) {
    const row = body.insertRow();
    const values = [["Kind", d.kind], ["Label", d.label], ["Endpoint", d.endpoint_origin]];
    for (const [name, v] of values) {
      const cell = row.insertCell();
      cell.textContent = v;
      cell.dataset.label = name; // shown before the value where rows stack (narrow screens)
    }
    const cell = row.insertCell();
    const test = document.createElement("button");
    test.textContent = "Send test";
    test.onclick = () => act(() => api("POST", `/api/devices/${d.id}/test`), "Test alert queued.");
    const del = document.createElement("button");
    del.textContent = "Remove";
    del.onclick = () => act(async () => { await api("DELETE", `/api/devices/${d.id}`); await loadDevices(); },
      "Device removed.");
    cell.append(test, " ", del);
  }
}

function fillRules() {
  $("enabled").checked = rules.enabled;
  const until = rules.muted_until ? new Date(rules.muted_until) : null;
  $("muted").textContent = until && until > new Date() ? `until ${until.toLocaleString()}` : "no";
  $("only_from").value = rules.only_from.join("\n");
  $("folders").value = rules.folders.join(", ");
  $("quiet_on").checked = rules.quiet_hours !== null;
  if (rules.quiet_hours) {
    $("quiet_start").value = rules.quiet_hours.start;
    $("quiet_end").value = rules.quiet_hours.end;
  }
  $("timezone").value = rules.timezone === "UTC" && !rules.quiet_hours
    ? Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" : rules.timezone;
}

async function loadRules() {
  rules = await api("GET", "/api/rules");
  fillRules();
}

// The form's own keys only: muted_until is the mute buttons' business, so saving the
// form never undoes a mute set meanwhile (another tab, `pushmail alerts rules`).
function rulesFromForm() {
  return {
    enabled: $("enabled").checked,
    only_from: $("only_from").value.split(/[\s,]+/).filter(Boolean),
    folders: $("folders").value.split(",").map((s) => s.trim()).filter(Boolean),
    quiet_hours: $("quiet_on").checked ? { start: $("quiet_start").value, end: $("quiet_end").value } : null,
    timezone: $("timezone").value.trim() || "UTC",
  };
}

// PATCH changes only the keys sent; the answer is the whole stored rule set.
async function patchRules(changes, message) {
  await act(async () => {
    rules = await api("PATCH", "/api/rules", changes);
    fillRules();
  }, message);
}

async function act(fn, done) {
  $("cert-help").hidden = true;
  try {
    await fn();
    status(done);
  } catch (e) {
    status(e.message, true);
    if (e.certificate) $("cert-help").hidden = false;
  }
}

// The browser fetches the service worker script itself, and refuses to when it does
// not trust the certificate, even after the user clicked through the warning. Its
// own message ("An SSL certificate error occurred…") does not say what to do.
function certificateError() {
  const e = new Error("This browser does not trust this server's certificate, so it cannot " +
    "receive Web Push alerts from it (clicking through the warning is not enough).");
  e.certificate = true;
  return e;
}

function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64url.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function subscribeBrowser() {
  if (!window.isSecureContext) {
    throw new Error("Web Push needs this page on HTTPS (or on localhost).");
  }
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    throw new Error("This browser has no Push API.");
  }
  let reg;
  try {
    reg = await navigator.serviceWorker.register("/sw.js");
  } catch (e) {
    if (e.name === "SecurityError" && /SSL|certificate/i.test(e.message)) throw certificateError();
    throw e;
  }
  await navigator.serviceWorker.ready;
  status("Asking the browser's push service for a subscription…");
  const sub = await reg.pushManager.subscribe({
    userVisibleOnly: true, applicationServerKey: keyBytes(me.vapid_public_key),
  });
  const json = sub.toJSON();
  await api("POST", "/api/devices", {
    kind: "webpush", endpoint: json.endpoint, keys: json.keys, label: navigator.userAgent.slice(0, 100),
  });
  await loadDevices();
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act(async () => {
    await api("POST", "/api/login", { address: $("address").value, password: $("password").value });
    $("password").value = "";
    await showSettings();
  }, "Signed in.");
});
$("logout").onclick = () => act(async () => {
  await api("POST", "/api/logout");
  $("settings").hidden = true;
  $("login").hidden = false;
}, "Signed out.");
$("rules").addEventListener("submit", (ev) => { ev.preventDefault(); patchRules(rulesFromForm(), "Rules saved."); });
const muteFor = (hours) => ({ muted_until: new Date(Date.now() + hours * 3600e3).toISOString() });
$("mute1h").onclick = () => patchRules(muteFor(1), "Muted for an hour.");
$("mute8h").onclick = () => patchRules(muteFor(8), "Muted for 8 hours.");
$("unmute").onclick = () => patchRules({ muted_until: null }, "Unmuted.");
$("subscribe").onclick = () => act(subscribeBrowser, "This browser will be alerted.");

showSettings().catch(() => { $("login").hidden = false; });
