"""Commands of any state and of login: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN,
AUTHENTICATE, ID, ENABLE, NAMESPACE, COMPRESS and IDLE.

Password checks are slow on purpose (argon2), so LOGIN and AUTHENTICATE only look the
user up here and hand the check to the driver (``Action("verify")``), which runs it
on a separate thread pool and then calls ``finish_login``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode

from pushmail.auth.names import qualify
from pushmail.imap import commands as c
from pushmail.imap.encoder import quoted
from pushmail.imap.errors import CommandFailed, ProtocolError
from pushmail.imap.session import Action, Session
from pushmail.store.interfaces import Store

# ENABLE-able extensions (RFC 5161); QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
# UIDONLY: RFC 9586 (ENABLE is refused while a mailbox is selected, so a view is
# always opened knowing it).
_ENABLEABLE = ("CONDSTORE", "QRESYNC", "IMAP4REV2", "UIDONLY")


def capability(s: Session, cmd: c.Capability, store: Store) -> None:
    s.untagged(b"CAPABILITY " + s.capabilities().encode())
    s.ok(cmd.tag, "CAPABILITY completed")


def noop(s: Session, cmd: c.Noop, store: Store) -> None:
    s.ok(cmd.tag, "NOOP completed")


def logout(s: Session, cmd: c.Logout, store: Store) -> Action:
    s.untagged(b"BYE pushmail logging out")
    s.ok(cmd.tag, "LOGOUT completed")
    return Action("logout", cmd.tag)


def starttls(s: Session, cmd: c.StartTLS, store: Store) -> Action:
    if s.secure:
        raise ProtocolError("TLS is already active")
    if not s.server.tls_available:
        raise CommandFailed("TLS is not configured")
    s.ok(cmd.tag, "Begin TLS negotiation now")
    return Action("starttls", cmd.tag)


def _check_plaintext(s: Session) -> None:
    if not s.plaintext_ok:
        raise CommandFailed("use STARTTLS or port 993 first", "PRIVACYREQUIRED")


def login(s: Session, cmd: c.Login, store: Store) -> Action:
    _check_plaintext(s)
    name = qualify(cmd.username, s.server.default_domain)
    return Action("verify", cmd.tag, store.get_user(name), cmd.password.value, name)


def authenticate(s: Session, cmd: c.Authenticate, store: Store) -> Action:
    _check_plaintext(s)
    if cmd.mechanism != "PLAIN":
        raise CommandFailed("unsupported mechanism; use PLAIN", "CANNOT")
    if cmd.initial_response is None:
        return Action("sasl", cmd.tag)
    return sasl_plain(s, cmd.tag, cmd.initial_response, store)


def sasl_response(s: Session, tag: str, line: bytes, store: Store) -> Action:
    """The client's answer to our empty ``+`` challenge: base64, or ``*`` to cancel."""
    text = line.rstrip(b"\r\n")
    if text == b"*":
        raise ProtocolError("authentication cancelled")
    try:
        raw = b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError("invalid base64 in SASL response") from exc
    return sasl_plain(s, tag, raw, store)


def sasl_plain(s: Session, tag: str, raw: bytes, store: Store) -> Action:
    """RFC 4616: ``[authzid] NUL authcid NUL passwd``; authzid must be empty or
    the same user (no proxy logins)."""
    parts = raw.split(b"\x00")
    if len(parts) != 3:
        raise ProtocolError("malformed PLAIN response")
    try:
        authz, authc, pw = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError as exc:
        raise ProtocolError("PLAIN response is not UTF-8") from exc
    name = qualify(authc, s.server.default_domain)
    if authz and qualify(authz, s.server.default_domain) != name:
        raise CommandFailed("proxy authentication is not allowed", "AUTHORIZATIONFAILED")
    return Action("verify", tag, store.get_user(name), pw, name)


def finish_login(s: Session, action: Action, ok: bool | None) -> None:
    """Called by the driver with the outcome of the password check; None when the
    attempt was refused unchecked (a guessing limit, or the hashing queue full)."""
    if ok is None:
        s.auth_failures += 1
        s.tagged(action.tag, "NO", "too many login attempts, try again later", "UNAVAILABLE")
        return
    if ok and action.user is not None:
        s.login_succeeded(action.user)
        s.ok(action.tag, "Logged in", "CAPABILITY " + s.capabilities())
        return
    s.auth_failures += 1
    s.tagged(action.tag, "NO", "invalid credentials", "AUTHENTICATIONFAILED")


def id_(s: Session, cmd: c.Id, store: Store) -> None:
    fields = (b"name", b"pushmail", b"version", s.server.version.encode())
    s.untagged(b"ID (" + b" ".join(quoted(f) for f in fields) + b")")
    s.ok(cmd.tag, "ID completed")


def enable(s: Session, cmd: c.Enable, store: Store) -> None:
    newly = []  # ENABLED lists what the client asked for and got (RFC 5161 §3.2)
    for cap in cmd.capabilities:
        if cap in _ENABLEABLE and cap not in s.enabled and cap not in newly:
            newly.append(cap)
    for cap in newly:
        if cap in ("CONDSTORE", "QRESYNC"):  # QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)
            s.condstore_command()
        s.enabled.add(cap)
    if s.view is not None:
        s.view.condstore = "CONDSTORE" in s.enabled
        s.view.qresync = "QRESYNC" in s.enabled
    names = ["IMAP4rev2" if n == "IMAP4REV2" else n for n in newly]
    s.untagged(("ENABLED " + " ".join(names)).rstrip().encode())
    s.ok(cmd.tag, "ENABLE completed")


def namespace(s: Session, cmd: c.Namespace, store: Store) -> None:
    s.untagged(b'NAMESPACE (("" "/")) NIL NIL')
    s.ok(cmd.tag, "NAMESPACE completed")


def compress(s: Session, cmd: c.Compress, store: Store) -> Action:
    """RFC 4978: after this tagged OK (sent uncompressed) both directions are raw
    DEFLATE; the driver puts ``transport/compress.py`` under the connection."""
    if s.compressed:
        raise CommandFailed("DEFLATE is already active", "COMPRESSIONACTIVE")
    if cmd.mechanism != "DEFLATE":
        raise ProtocolError(f"unknown compression mechanism {cmd.mechanism}")
    s.compressed = True
    s.ok(cmd.tag, "DEFLATE active")
    return Action("compress", cmd.tag)


def idle(s: Session, cmd: c.Idle, store: Store) -> Action:
    return Action("idle", cmd.tag)
