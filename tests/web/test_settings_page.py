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

    # Muted from elsewhere (another tab, a script) while this page shows "no": saving
    # the rules form changes only the form's keys and keeps that mute (PATCH).
    until = "2030-01-01T08:00:00+00:00"
    assert srv.api("PATCH", "/api/rules", {"muted_until": until})[0] == 200
    page.fill("#folders", "INBOX, Alerts")
    page.click("#rules button[type=submit]")
    expect(page.locator("#status")).to_have_text("Rules saved.")
    _, stored = srv.api("GET", "/api/rules")
    assert stored["muted_until"] == until and stored["folders"] == ["INBOX", "Alerts"]
    expect(page.locator("#muted")).not_to_have_text("no")  # the page now shows it
    page.click("#unmute")
    expect(page.locator("#status")).to_have_text("Unmuted.")
    page.fill("#folders", "INBOX")
    page.click("#rules button[type=submit]")
    expect(page.locator("#status")).to_have_text("Rules saved.")

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


def test_page_fits_a_phone_and_explains_an_untrusted_certificate(tmp_path: Path) -> None:
    """At 390 px (a phone) nothing is wider than the screen, devices table included.
    The browser here does not trust the self-signed certificate (the user clicked
    through the warning, as Playwright's ignore_https_errors does): "Alert this
    browser" then says why Web Push cannot work, instead of the browser's raw error."""
    srv = make_server(tmp_path)
    srv.start()
    try:
        long_label = "Pixel 8 Pro of the family's shared kitchen tablet " * 2
        for i in range(2):
            url = f"https://hooks.very-long-subdomain-name-{i}.example.com/a"
            body = {
                "kind": "webhook",
                "label": long_label[:100],
                "secret": "s" * 20,
                "endpoint": url,
            }
            status, err = srv.api("POST", "/api/devices", body)
            assert status == 201, err
        with sync_api.sync_playwright() as pw:
            args = [f for f in FLAGS if f != "--ignore-certificate-errors"]
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
            try:
                context = browser.new_context(
                    ignore_https_errors=True, viewport={"width": 390, "height": 844}
                )
                page = context.new_page()
                _phone_and_certificate(page, srv)
                context.close()
            finally:
                browser.close()
    finally:
        srv.stop()


def _phone_and_certificate(page: Any, srv: PushServer) -> None:
    expect = sync_api.expect
    page.goto(f"https://127.0.0.1:{srv.http_port}/")
    page.fill("#address", "alice@example.org")
    page.fill("#password", "alice-secret")
    page.click("#login button[type=submit]")
    expect(page.locator("#devices")).to_contain_text("very-long-subdomain-name-1")
    width = page.evaluate("document.documentElement.scrollWidth")
    print(f"scrollWidth at 390 px: {width}")
    assert width <= 390

    page.click("#subscribe")
    expect(page.locator("#status")).to_contain_text("does not trust", timeout=30_000)
    expect(page.locator("#cert-help")).to_be_visible()
    expect(page.locator("#cert-help")).to_contain_text("certificate")
    assert "SSL certificate error occurred" not in page.locator("#status").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
