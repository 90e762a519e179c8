"""The settings page in a real browser (Debian's headless Chromium, driven by
Playwright) against a real ``pushmail serve``: sign in, add a VIP sender, mute for an
hour, and see each change decide the next delivery's alert; subscribe this browser up
to the Push API call (headless Chromium has no push service to reach)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from push_endpoint import PushEndpoint, ThreadedEndpoint
from push_server import PushServer, lmtp_deliver, make_server, message

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(
        "needs Debian's chromium package (apt-get install chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--ignore-certificate-errors"]  # fmt: skip
# Records what the page hands to the Push API, then lets the real call go on.
RECORD_SUBSCRIBE = """
window.__subscribeCalls = [];
const original = PushManager.prototype.subscribe;
PushManager.prototype.subscribe = function (options) {
  const key = new Uint8Array(options.applicationServerKey);
  window.__subscribeCalls.push({userVisibleOnly: options.userVisibleOnly, key: Array.from(key)});
  return original.call(this, options);
};
"""


def next_alert(ep: PushEndpoint, seen: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while len(ep.received) <= seen:
        assert time.monotonic() < deadline, "no alert came"
        time.sleep(0.01)
    payload = ep.received[seen].payload
    assert payload is not None
    return payload


def test_settings_page_in_chromium(tmp_path: Path) -> None:
    srv = make_server(tmp_path, "hold = 0.0\nmin_interval = 0.0\n")
    srv.start()
    try:
        with ThreadedEndpoint() as ep, sync_api.sync_playwright() as pw:
            status, _ = srv.api("POST", "/api/devices", {"kind": "webhook", "label": "phone",
                                "endpoint": ep.url("/hook"), "secret": "s" * 20})  # fmt: skip
            assert status == 201
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                context = browser.new_context(ignore_https_errors=True)
                context.add_init_script(RECORD_SUBSCRIBE)
                _drive(context.new_page(), srv, ep)
                context.close()
            finally:
                browser.close()
    finally:
        srv.stop()


def wait_in_page(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll ``expression`` from here: Playwright's ``wait_for_function`` compiles its
    predicate inside the page, which the page's CSP (no 'unsafe-eval') forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def _drive(page: Any, srv: PushServer, ep: PushEndpoint) -> None:
    expect = sync_api.expect
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"https://127.0.0.1:{srv.http_port}/")
    page.fill("#address", "alice@example.org")
    page.fill("#password", "alice-secret")
    page.click("#login button[type=submit]")
    expect(page.locator("#me")).to_have_text("alice@example.org")
    expect(page.locator("#devices")).to_contain_text("phone")

    # A VIP sender: mail from others no longer alerts.
    page.fill("#only_from", "boss@example.com")
    page.click("#rules button[type=submit]")
    expect(page.locator("#status")).to_have_text("Rules saved.")
    assert lmtp_deliver(srv, message("ads", sender="spam@ads.example")) == 250
    assert lmtp_deliver(srv, message("numbers", sender="boss@example.com")) == 250
    first = next_alert(ep, 0)
    assert (first["new"], first["total"]) == (1, 2)  # the spam was not announced

    # Mute for an hour: the boss's next mail is not announced either.
    page.click("#mute1h")
    expect(page.locator("#status")).to_have_text("Muted for an hour.")
    expect(page.locator("#muted")).not_to_have_text("no")
    assert lmtp_deliver(srv, message("while muted", sender="boss@example.com")) == 250
    page.click("#unmute")
    expect(page.locator("#status")).to_have_text("Unmuted.")
    assert lmtp_deliver(srv, message("after", sender="boss@example.com")) == 250
    second = next_alert(ep, 1)
    assert (second["new"], second["total"]) == (1, 4)  # the muted one was skipped

    # A test alert from the device list.
    page.click("#devices button:has-text('Send test')")
    expect(page.locator("#status")).to_have_text("Test alert queued.")
    assert next_alert(ep, 2)["test"] is True

    # Subscribing this browser reaches the Push API with the server's VAPID key.
    _, me = srv.api("GET", "/api/me")
    page.click("#subscribe")
    wait_in_page(page, "window.__subscribeCalls.length > 0")
    [call] = page.evaluate("window.__subscribeCalls")
    from push_endpoint import unb64url

    assert call["userVisibleOnly"] is True
    assert bytes(call["key"]) == unb64url(me["vapid_public_key"])
    assert page.evaluate("navigator.serviceWorker.getRegistration('/').then(r => !!r)")
    # The page's own scripts and styles all load under its CSP (nothing inline).
    assert not [m for m in console if "Content Security Policy" in m], console
    assert ep.errors == []
