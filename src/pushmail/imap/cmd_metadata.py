"""GETMETADATA and SETMETADATA (RFC 5464) over the store's entries.

Every entry is the user's own: /private entries as the RFC means them, and /shared
ones too, because this server shares no mailbox between users; a user's server
entries (mailbox "") are theirs alone as well. So NOPRIVATE is never answered.
Entry names ignore case (§3.2): they are stored and returned in lower case. Values
are bytes; one with a NUL goes out as a literal8 (the grammar's ``value``).

A GETMETADATA entry without a value comes back as NIL when asked for alone (DEPTH
0, as Dovecot and Cyrus answer); with DEPTH 1 or infinity only existing entries
come back, as in the RFC's own example (§4.2.2).
"""

from __future__ import annotations

from pushmail.imap.commands_metadata import Metadata
from pushmail.imap.encoder import NIL, astring, quoted
from pushmail.imap.encoder import mailbox as enc_mailbox
from pushmail.imap.errors import CommandFailed
from pushmail.imap.session import Session
from pushmail.store.interfaces import Store

# The largest value one entry may hold (RFC 5464 §4.3 asks at least 1024 octets);
# bigger ones are refused with [METADATA MAXSIZE n].
MAX_VALUE_SIZE = 64 * 1024
# How many entries one user may hold over the server and all their mailboxes (the
# RFC asks at least 10); past it SETMETADATA is refused with [METADATA TOOMANY].
MAX_ENTRIES = 500


def metadata(s: Session, cmd: Metadata, store: Store) -> None:
    user = s.require_user()
    box = None if cmd.mailbox == "" else s.mailbox(store, cmd.mailbox)
    box_id = None if box is None else box.id
    name = enc_mailbox(box.name) if box is not None else quoted(b"")
    if cmd.kind == "SETMETADATA":
        changes: dict[str, bytes | None] = {}
        for entry, value in cmd.values:  # the last value of a repeated entry wins
            if value is not None and len(value) > MAX_VALUE_SIZE:
                raise CommandFailed("value too large", f"METADATA MAXSIZE {MAX_VALUE_SIZE}")
            changes[entry.lower()] = value
        if not store.set_metadata(user.id, box_id, list(changes.items()), MAX_ENTRIES):
            raise CommandFailed("too many entries", "METADATA TOOMANY")
        s.ok(cmd.tag, "SETMETADATA completed")
        return
    stored = store.get_metadata(user.id, box_id)
    found: dict[str, bytes | None] = {}
    for entry in (e.lower() for e in cmd.entries):
        if entry in stored or cmd.depth == "0":
            found.setdefault(entry, stored.get(entry))
        if cmd.depth != "0":
            prefix = entry + "/"
            for key in sorted(stored):
                if key.startswith(prefix) and (
                    cmd.depth == "infinity" or "/" not in key[len(prefix) :]
                ):
                    found.setdefault(key, stored[key])
    longest = 0
    parts: list[bytes] = []
    for entry, value in found.items():
        if value is not None and cmd.maxsize is not None and len(value) > cmd.maxsize:
            longest = max(longest, len(value))
            continue
        parts.append(astring(entry) + b" " + _value(value))
    if parts:
        s.untagged(b"METADATA " + name + b" (" + b" ".join(parts) + b")")
    code = f"METADATA LONGENTRIES {longest}" if longest else None
    s.ok(cmd.tag, "GETMETADATA completed", code)


def _value(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    if b"\x00" in value:
        return b"~{%d}\r\n" % len(value) + value
    return quoted(value)
