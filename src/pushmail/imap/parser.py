"""IMAP command parser: one complete command (as the fragmentizer hands it over) in,
one typed ``Command`` out.

``CommandParser`` reads the tag and the command name, then hands over to the rule of
that command, which it is given by the command table (``command_table.py``; design.md
rule 3: declared, not discovered). The rules live in ``parse_lexer`` (tokens),
``parse_mailbox``, ``parse_fetch`` and ``parse_search``; the small commands' are here.
Any invalid input raises ``ProtocolError`` and nothing else: ``CommandParser.parse``
converts the few errors that a value type could raise on its own, so the fuzz
invariant holds (design.md rule 7).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping

from pushmail.imap.commands import (
    Authenticate,
    Command,
    Compress,
    Copy,
    Enable,
    Expunge,
    Id,
    Login,
)
from pushmail.imap.errors import ProtocolError
from pushmail.imap.parse_lexer import (
    Reader,
    paren_list,
    parse_astring,
    parse_mailbox,
    parse_nil,
    parse_nstring,
    parse_sequence_set,
    parse_string,
    parse_tag,
    parse_tag_token,
    parse_upper_atom,
    utf8,
)
from pushmail.imap.types import Secret

__all__ = ["CommandParser", "Rule", "bare", "parse_tag"]

_COMMAND_NAME = re.compile(rb"[A-Za-z0-9]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")
# RFC 2971 §3.3: limits on what a client may send in ID.
_ID_MAX_PAIRS = 30
_ID_MAX_FIELD = 30
_ID_MAX_VALUE = 1024

Rule = Callable[[Reader, str], Command]


def parse_authenticate(r: Reader, tag: str) -> Authenticate:
    """authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")]   ; RFC 4959
    auth-type = atom ; base64 = *(4base64-char) [base64-terminal]; "=" is empty"""
    r.sp()
    mechanism = parse_upper_atom(r)
    if not r.skip(b" "):
        return Authenticate(tag, mechanism)
    raw = r.match(_BASE64)
    if raw is None:
        r.fail("expected a base64 initial response")
    if raw == b"=":
        return Authenticate(tag, mechanism, b"")
    try:
        data = base64.b64decode(raw, validate=True)
    except binascii.Error:
        r.fail("bad base64 in the initial response")
    return Authenticate(tag, mechanism, data)


def parse_login(r: Reader, tag: str) -> Login:
    """login = "LOGIN" SP userid SP password ; userid = astring ; password = astring"""
    r.sp()
    user = utf8(parse_astring(r), "user name")
    r.sp()
    password = utf8(parse_astring(r), "password")
    return Login(tag, user, Secret(password))


def _id_pair(r: Reader) -> tuple[str, str | None]:
    field = utf8(parse_string(r), "ID field")
    r.sp()
    raw = parse_nstring(r)
    if len(field.encode()) > _ID_MAX_FIELD or (raw is not None and len(raw) > _ID_MAX_VALUE):
        r.fail("ID field or value too long")
    return field, None if raw is None else utf8(raw, "ID value")


def parse_id_params_list(r: Reader) -> tuple[tuple[str, str | None], ...] | None:
    """id-params-list = "(" *(string SP nstring) ")" / nil   ; RFC 2971, pairs
    separated by SP"""
    if parse_nil(r):
        return None
    pairs = paren_list(r, _id_pair, empty_ok=True)
    if len(pairs) > _ID_MAX_PAIRS:
        r.fail("too many ID pairs")
    return tuple(pairs)


def parse_id(r: Reader, tag: str) -> Id:
    """id = "ID" SP id-params-list"""
    r.sp()
    return Id(tag, parse_id_params_list(r))


def parse_enable(r: Reader, tag: str) -> Enable:
    """enable = "ENABLE" 1*(SP capability) ; capability = atom        ; RFC 5161"""
    caps = []
    while r.skip(b" "):
        caps.append(parse_upper_atom(r))
    if not caps:
        r.fail("ENABLE needs at least one capability")
    return Enable(tag, tuple(caps))


def parse_compress(r: Reader, tag: str) -> Compress:
    """compress = "COMPRESS" SP algorithm ; algorithm = "DEFLATE" / atom  ; RFC 4978"""
    r.sp()
    return Compress(tag, parse_upper_atom(r))


def parse_copy(r: Reader, tag: str, uid: bool, move: bool) -> Copy:
    """copy = "COPY" SP sequence-set SP mailbox ; move = "MOVE" SP sequence-set SP mailbox"""
    r.sp()
    seqset = parse_sequence_set(r)
    r.sp()
    return Copy(tag, seqset, parse_mailbox(r), uid=uid, move=move)


def parse_uid_expunge(r: Reader, tag: str) -> Expunge:
    """uid-expunge = "UID" SP "EXPUNGE" SP sequence-set              ; RFC 4315"""
    r.sp()
    return Expunge(tag, parse_sequence_set(r))


def bare(cls: Callable[[str], Command]) -> Rule:
    """The rule of a command that takes no arguments."""
    return lambda r, tag: cls(tag)


def _command_name(r: Reader) -> str:
    raw = r.match(_COMMAND_NAME)
    if raw is None:
        r.fail("expected a command name")
    return raw.decode("ascii").upper()


class CommandParser:
    """Reads a command's tag and name, then the rest by the rule the command table
    gives for that name (``command_table.py``): which commands exist is the table's
    business, how each is spelled is this package's. The table hands the rules in,
    so the parser imports nothing of the session layer behind the handlers."""

    __slots__ = ("_rules",)

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        self._rules = rules  # by name as on the wire: "FETCH", "UID FETCH"

    def parse_body(self, r: Reader) -> Command:
        """command = tag SP (command-any / command-auth / command-nonauth /
        command-select) CRLF ; uid = "UID" SP (copy / move / fetch / search / store
        / uid-expunge)"""
        tag = parse_tag_token(r)
        r.sp()
        name = _command_name(r)
        if name == "UID":
            r.sp()
            name = "UID " + _command_name(r)
            rule = self._rules.get(name)
            if rule is None:
                r.fail(f"{name} is not a command")
        else:
            rule = self._rules.get(name)
            if rule is None:
                r.fail(f"unknown command {name}")
        command = rule(r, tag)
        r.end()
        return command

    def parse(self, data: bytes) -> Command:
        """Parse one complete command, CRLF included, into its typed form.

        Raises ProtocolError for anything that does not follow the grammar; the value
        types' own checks raise ProtocolError too, and a defensive net turns any other
        ValueError/RecursionError into one, so peer input can never crash a session."""
        try:
            return self.parse_body(Reader(bytes(data)))
        except ProtocolError:
            raise
        except (ValueError, RecursionError) as exc:  # pragma: no cover - defensive net
            raise ProtocolError(f"invalid command: {exc}") from None
