"""One IMAP client's picture of its selected mailbox, built only from what the server
told it, and checked after every response (issue 14, "multi-session state checker").

The model is a list of messages in sequence-number order, each with the UID and flags
once the server has said them, the flag list of the last ``FLAGS`` response, and the
MODSEQ of each message. Untagged responses change it the way RFC 3501/9051 and RFC
7162 say a client must: EXISTS only grows the list, EXPUNGE removes by number,
VANISHED by UID, FETCH fills in UID, FLAGS and MODSEQ. Anything the server says that
a careful client cannot reconcile is an error, with a line of context:

- a keyword in a FETCH that the last FLAGS did not list (RFC 3501 §7.2.6);
- a message number outside 1..EXISTS, an EXISTS below the count the client holds
  (a count going backwards without EXPUNGE), EXPUNGE of a number that is not there;
- UIDs that do not strictly ascend with the sequence numbers, a message whose
  UID changes, a VANISHED UID the client cannot place;
- a message's MODSEQ going down (RFC 7162 §3.1.2);
- a FETCH 1:* that leaves out a message the client holds, with nothing said about
  an expunge.

Pure: no I/O. ``bench/state_check.py`` drives it against real servers.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
_TOKEN = re.compile(rb'\(|\)|"(?:[^"\\]|\\.)*"|\{\d+\+?\}\r\n|[^\s()"{]+|\{')


class ParseError(Exception):
    """A response the tokenizer cannot read."""


Value = bytes | list["Value"]


def parse_list(data: bytes, pos: int = 0) -> tuple[list[Value], int]:
    """Parse space-separated items up to the matching ``)`` (or the end) from
    ``data[pos:]``; literals ``{n}\\r\\n`` are taken whole."""
    out: list[Value] = []
    while pos < len(data):
        if data[pos : pos + 1] == b" ":
            pos += 1
            continue
        m = _TOKEN.match(data, pos)
        if m is None:
            raise ParseError(f"cannot read {data[pos : pos + 40]!r}")
        tok = m.group(0)
        pos = m.end()
        if tok == b"(":
            inner, pos = parse_list(data, pos)
            out.append(inner)
        elif tok == b")":
            return out, pos
        elif tok.startswith(b"{") and tok.endswith(b"\r\n"):
            n = int(tok[1:].split(b"}")[0].rstrip(b"+"))
            out.append(data[pos : pos + n])
            pos += n
        elif tok.startswith(b'"'):
            out.append(re.sub(rb"\\(.)", rb"\1", tok[1:-1]))
        else:
            out.append(tok)
    return out, pos


def parse_uid_set(text: bytes) -> list[int]:
    out: list[int] = []
    for part in text.split(b","):
        lo, _, hi = part.partition(b":")
        a, b = int(lo), int(hi or lo)
        out.extend(range(min(a, b), max(a, b) + 1))
    return out


@dataclass(slots=True)
class Msg:
    uid: int | None = None
    flags: frozenset[str] | None = None
    modseq: int = 0


@dataclass(slots=True)
class MailboxModel:
    """What one client knows of its selected mailbox. ``errors`` collects every
    inconsistency found; ``context`` is the client's name for error lines."""

    context: str = ""
    msgs: list[Msg] = field(default_factory=list)
    defined: frozenset[str] | None = None  # the last FLAGS list
    selected: bool = False
    errors: list[str] = field(default_factory=list)
    # Per command: the FETCH numbers seen and whether an expunge was reported.
    fetched: set[int] = field(default_factory=set)
    expunge_seen: bool = False
    uid_command: bool = False  # the command running is a UID command

    # -- the client's own steps ----------------------------------------------
    def reset(self) -> None:
        """A SELECT or EXAMINE is being sent: the old picture no longer holds."""
        self.msgs = []
        self.defined = None
        self.selected = False

    def begin_command(self, uid: bool = False) -> None:
        self.fetched = set()
        self.expunge_seen = False
        self.uid_command = uid

    @property
    def exists(self) -> int:
        return len(self.msgs)

    def first_unknown(self) -> int | None:
        """The first message number whose UID the client does not know."""
        for i, m in enumerate(self.msgs):
            if m.uid is None:
                return i + 1
        return None

    def known_uids(self) -> list[int]:
        return [m.uid for m in self.msgs if m.uid is not None]

    def error(self, text: str) -> None:
        self.errors.append(f"{self.context}: {text}")

    # -- what the server says ------------------------------------------------
    def on_untagged(self, line: bytes) -> None:
        """Apply one untagged response (``* `` included, CRLF not), then check."""
        body = line[2:]
        try:
            self._apply(body)
        except (ParseError, ValueError, IndexError) as exc:
            self.error(f"unreadable response {line[:120]!r}: {exc}")
        self.check(line)

    def _apply(self, body: bytes) -> None:
        head, _, rest = body.partition(b" ")
        word = rest.split(b" ", 1)[0].upper() if head.isdigit() else head.upper()
        if head.upper() == b"FLAGS":
            items, _ = parse_list(rest)
            self.defined = frozenset(_text(f) for f in _as_list(items[0]))
        elif head.upper() == b"VANISHED":
            if not rest.upper().startswith(b"(EARLIER)"):
                self._vanished(parse_uid_set(rest.strip()))
        elif head.upper() in (b"SEARCH", b"ESEARCH"):
            self._search(head.upper(), rest)
        elif word == b"EXISTS":
            self._exists(int(head))
        elif word == b"RECENT":
            if int(head) > self.exists:
                self.error(f"RECENT {int(head)} above EXISTS {self.exists}")
        elif word == b"EXPUNGE":
            self._expunge(int(head))
        elif word == b"FETCH":
            items, _ = parse_list(rest.split(b" ", 1)[1])
            self._fetch(int(head), _as_list(items[0]))

    def _exists(self, n: int) -> None:
        if n < self.exists:
            self.error(f"EXISTS {n} below the {self.exists} messages held, without EXPUNGE")
            del self.msgs[n:]
        self.msgs.extend(Msg() for _ in range(n - self.exists))

    def _expunge(self, seq: int) -> None:
        self.expunge_seen = True
        if not 1 <= seq <= self.exists:
            self.error(f"EXPUNGE {seq} with {self.exists} messages")
            return
        del self.msgs[seq - 1]

    def _vanished(self, uids: list[int]) -> None:
        """Untagged VANISHED: each UID was a message the client holds (RFC 7162
        §3.2.10). One whose UID the client has not learnt yet is one of the messages
        it knows only by number, between the known UIDs below and above it."""
        self.expunge_seen = True
        for uid in sorted(uids, reverse=True):
            i = self._slot(uid)
            if i is None:
                self.error(f"VANISHED {uid}: no such message held")
            else:
                del self.msgs[i]

    def _slot(self, uid: int) -> int | None:
        """Where a message with ``uid`` is held: the message with that UID, or the
        first UID-less one that may have it (known UIDs below and above it fit)."""
        below = 0
        candidate = None
        for i, m in enumerate(self.msgs):
            if m.uid is None:
                if candidate is None and below < uid:
                    candidate = i
                continue
            if m.uid == uid:
                return i
            if m.uid > uid:
                return candidate
            below, candidate = m.uid, None
        return candidate

    def _fetch(self, seq: int, items: list[Value]) -> None:
        if not 1 <= seq <= self.exists:
            self.error(f"FETCH for message {seq} with {self.exists} messages")
            return
        self.fetched.add(seq)
        msg = self.msgs[seq - 1]
        pairs = dict(zip(items[::2], items[1::2], strict=False))
        for key, value in pairs.items():
            name = _text(key).upper() if isinstance(key, bytes) else ""
            if name == "UID":
                self._uid(seq, msg, int(_text(value)))
            elif name == "FLAGS":
                msg.flags = frozenset(_text(f) for f in _as_list(value))
                self._flags_known(seq, msg.flags)
            elif name == "MODSEQ":
                modseq = int(_text(_as_list(value)[0]))
                if modseq < msg.modseq:
                    self.error(f"message {seq} MODSEQ went down {msg.modseq} -> {modseq}")
                msg.modseq = modseq

    def _uid(self, seq: int, msg: Msg, uid: int) -> None:
        if msg.uid is not None and msg.uid != uid:
            self.error(f"message {seq} changed UID {msg.uid} -> {uid}")
        msg.uid = uid

    def _flags_known(self, seq: int, flags: frozenset[str]) -> None:
        if self.defined is None:
            self.error(f"FETCH FLAGS for message {seq} before any FLAGS response")
            return
        defined = {f.lower() for f in self.defined}
        for flag in flags:
            if flag == "\\Recent":
                continue
            if flag.startswith("\\"):
                if flag not in SYSTEM_FLAGS:
                    self.error(f"message {seq} has unknown system flag {flag}")
            elif flag.lower() not in defined:
                self.error(f"message {seq} shows keyword {flag} not in FLAGS")

    def _search(self, kind: bytes, rest: bytes) -> None:
        """SEARCH/ESEARCH results name messages the client holds when they come:
        numbers within EXISTS, UIDs it holds (or that fit a message it knows only
        by number). Checked at once: an EXPUNGE may follow in the same reply."""
        if kind == b"SEARCH":
            numbers = [int(t) for t in rest.split(b"(")[0].split() if t.isdigit()]
        else:
            items, _ = parse_list(rest)
            numbers = []
            for key, value in itertools.pairwise(items):
                if key in (b"MIN", b"MAX") and isinstance(value, bytes):
                    numbers.append(int(value))
                elif key == b"ALL" and isinstance(value, bytes):
                    numbers.extend(parse_uid_set(value))
                elif key == b"COUNT" and isinstance(value, bytes) and int(value) > self.exists:
                    self.error(f"ESEARCH COUNT {int(value)} above EXISTS {self.exists}")
        for n in numbers:
            if self.uid_command and self._slot(n) is None:
                self.error(f"UID SEARCH returned UID {n}, not held")
            elif not self.uid_command and not 1 <= n <= self.exists:
                self.error(f"SEARCH returned message {n} with {self.exists} messages")

    def check_full_fetch(self, before: int) -> None:
        """After FETCH 1:*: every message held when it was sent was fetched, unless
        the server reported an expunge meanwhile (RFC 9051 allows it to leave out
        an expunged message then)."""
        if self.expunge_seen:
            return
        missing = [n for n in range(1, min(before, self.exists) + 1) if n not in self.fetched]
        if missing:
            self.error(f"FETCH 1:* left out messages {missing[:5]} of {before}")

    # -- invariants -----------------------------------------------------------
    def check(self, after: bytes = b"") -> None:
        """The model holds together: the known UIDs strictly ascend with the
        sequence numbers (UID-less messages may sit anywhere: an unsolicited FETCH
        with UID can name a message after others not fetched yet)."""
        last = 0
        for seq, msg in enumerate(self.msgs, 1):
            if msg.uid is None:
                continue
            if msg.uid <= last:
                self._fail(after, f"UIDs not ascending at message {seq}: {last}, {msg.uid}")
                return
            last = msg.uid

    def _fail(self, after: bytes, text: str) -> None:
        self.error(f"{text} (after {after[:100]!r})")


def _as_list(value: Value) -> list[Value]:
    if isinstance(value, list):
        return value
    raise ParseError(f"expected a list, got {value!r}")


def _text(value: Value) -> str:
    if isinstance(value, list):
        raise ParseError(f"expected an atom, got {value!r}")
    return value.decode("utf-8", "replace")
