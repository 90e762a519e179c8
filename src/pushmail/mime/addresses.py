"""Address lists as RFC 5322 §3.4 writes them, for ENVELOPE and SEARCH.

``email.utils.getaddresses`` is made for sending mail, not for reading every header
real mail carries: it lets comments leak into the display name
(``<user (comment)@ (comment) domain.org>``), drops source routes
(``<@route:user@domain>``, RFC 5322 §4.4 obs-route, which ENVELOPE shows as the
at-domain-list), and flattens groups. This is a small tokenizer and recursive reader
for exactly the grammar ENVELOPE needs, lenient the way Dovecot is (the differential
test in tests/e2e compares the two):

* comments are never part of a name, mailbox or domain; a bare addr-spec takes the
  last comment seen as its name (``bob@example.net (Bob)``);
* a lone word is a mailbox without a domain; several words without ``@`` or ``<``
  are a name without mailbox or domain;
* reading stops at the first token that cannot continue the list (``a@b; c@d``
  gives one address).

Values are ``str`` holding the raw header bytes as Latin-1 (encoded words and 8-bit
text are kept as they are: ENVELOPE shows them raw).
"""

from __future__ import annotations

from dataclasses import dataclass

_SPECIALS = '()<>@,;:\\".[]'
_WORD_STOP = frozenset('()<>@,;:\\"[] \t\r\n')  # a dot continues a dot-atom


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: None where the header has no such element."""

    name: str | None
    route: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class Group:
    """A group: ``members`` as found (may be empty)."""

    name: str
    members: list[Address]


Entry = Address | Group


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "word" (atom/dot-atom/domain literal), "quoted", "comment", or a special
    text: str


def tokenize(value: str) -> list[_Tok]:
    """Tokens of a structured header value; blanks separate and vanish."""
    toks: list[_Tok] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == '"':
            text, i = _delimited(value, i + 1, '"')
            toks.append(_Tok("quoted", text))
        elif ch == "(":
            text, i = _comment(value, i + 1)
            toks.append(_Tok("comment", text))
        elif ch == "[":
            end = value.find("]", i)
            end = n if end < 0 else end + 1
            toks.append(_Tok("word", value[i:end]))
            i = end
        elif ch in _SPECIALS and ch != ".":
            toks.append(_Tok(ch, ch))
            i += 1
        else:
            j = i
            while j < n and value[j] not in _WORD_STOP:
                j += 1
            toks.append(_Tok("word", value[i:j]))
            i = j
    return toks


def _delimited(value: str, i: int, close: str) -> tuple[str, int]:
    out: list[str] = []
    while i < len(value) and value[i] != close:
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        if value[i] not in "\r\n":
            out.append(value[i])
        i += 1
    return "".join(out), i + 1


def _comment(value: str, i: int) -> tuple[str, int]:
    """A comment's text (a nested comment kept with its parentheses), and where it ends."""
    out: list[str] = []
    depth = 1
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if not depth:
                return " ".join("".join(out).split()), i + 1
        out.append(ch)
        i += 1
    return " ".join("".join(out).split()), i


class _Reader:
    """Reads entries from the token list; ``comment`` is the last comment passed."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.pos = 0
        self.comment: str | None = None

    def peek(self) -> str | None:
        """Kind of the next token that is not a comment (remembering comments)."""
        while self.pos < len(self.toks) and self.toks[self.pos].kind == "comment":
            self.comment = self.toks[self.pos].text or self.comment
            self.pos += 1
        return self.toks[self.pos].kind if self.pos < len(self.toks) else None

    def take(self) -> _Tok:
        self.peek()
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def words(self) -> list[str]:
        """A run of words and quoted strings (a phrase, or a local part)."""
        out: list[str] = []
        while self.peek() in ("word", "quoted"):
            out.append(self.take().text)
        return out

    def domain(self) -> str | None:
        """The domain after ``@``: words (dot-atoms, literals), until something else."""
        parts = self.words()
        return "".join(parts) or None


def parse_addresses(value: str) -> list[Entry]:
    """The entries of an address-list header value (see the module notes)."""
    r = _Reader(tokenize(value))
    out: list[Entry] = []
    while True:
        while r.peek() == ",":
            r.take()
        if r.peek() is None:
            return out
        entry = _entry(r)
        if entry is None:
            return out
        out.append(entry)
        if r.peek() not in (",", None):
            return out  # cannot continue the list: stop here, as Dovecot does


def _entry(r: _Reader) -> Entry | None:
    start = r.pos
    r.comment = None
    phrase = r.words()
    if r.peek() == ":":
        r.take()
        members: list[Address] = []
        while r.peek() not in (";", None):
            if r.peek() == ",":
                r.take()
                continue
            member = _mailbox(r, r.words())
            if member is None:
                break
            members.append(member)
        if r.peek() == ";":
            r.take()
        return Group(" ".join(phrase), members)
    mailbox = _mailbox(r, phrase)
    if mailbox is None and r.pos == start:
        return None
    return mailbox


def _mailbox(r: _Reader, phrase: list[str]) -> Address | None:
    kind = r.peek()
    if kind == "<":
        r.take()
        return _angle(r, " ".join(phrase) or None)
    if kind == "@":
        r.comment = None
        r.take()
        host = r.domain()
        r.peek()  # a comment after the address is its name
        return Address(r.comment, None, "".join(phrase) or None, host)
    if not phrase:
        return None
    if len(phrase) == 1:
        return Address(None, None, phrase[0], None)
    return Address(" ".join(phrase), None, None, None)


def _angle(r: _Reader, name: str | None) -> Address:
    route: list[str] = []
    while r.peek() == "@":  # obs-route: "@a,@b:" before the addr-spec (RFC 5322 §4.4)
        r.take()
        route.append("@" + (r.domain() or ""))
        while r.peek() == ",":
            r.take()
        if r.peek() == ":":
            r.take()
            break
    local = "".join(r.words()) or None
    host = None
    if r.peek() == "@":
        r.take()
        host = r.domain()
    while r.peek() not in (">", ",", ";", None):
        r.take()  # junk inside the brackets
    if r.peek() == ">":
        r.take()
    return Address(name, ",".join(route) or None, local, host)
