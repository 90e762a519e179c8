"""The RFC 5322 address reader behind ENVELOPE and SEARCH FROM/TO (issue 14, item 8).

Expected values are what Dovecot 2.3 gives for the same header (the differential
test, tests/e2e/test_mime_dovecot_diff.py, checks the corpus forms against it).
"""

from __future__ import annotations

import pytest

from pushmail.imap.search_eval import address_text
from pushmail.imap.structure import addresses
from pushmail.mime.addresses import Address, Group, parse_addresses

A = Address


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<user-from (comment)@ (comment) domain.org>", [A(None, None, "user-from", "domain.org")]),
        (
            "(lead) bob (middle) @ (domain) example.net (trail)",
            [A("trail", None, "bob", "example.net")],
        ),
        (
            "carol@example.com (Carol (nested) Comment)",
            [A("Carol (nested) Comment", None, "carol", "example.com")],
        ),
        (
            "=?utf-8?b?w4lx?= (Team) <team@example.org>",
            [A("=?utf-8?b?w4lx?=", None, "team", "example.org")],
        ),
        ("<@route:user@domain>", [A(None, "@route", "user", "domain")]),
        (
            "R <@a.example,@b.example:u@d.example>",
            [A("R", "@a.example,@b.example", "u", "d.example")],
        ),
        (
            '"quoted \\"nick\\" name" <q@example.org>',
            [A('quoted "nick" name', None, "q", "example.org")],
        ),
        (
            '"M\xfcller, J" <j@example.de>, x@y.z',
            [A("M\xfcller, J", None, "j", "example.de"), A(None, None, "x", "y.z")],
        ),
        ("Just A Name", [A("Just A Name", None, None, None)]),
        ("postmaster", [A(None, None, "postmaster", None)]),
        ("a@example.org; b@example.org", [A(None, None, "a", "example.org")]),
        ("u@[192.0.2.1]", [A(None, None, "u", "[192.0.2.1]")]),
        ("", []),
    ],
)
def test_mailboxes(value: str, expected: list[Address]) -> None:
    assert parse_addresses(value) == expected


def test_groups() -> None:
    got = parse_addresses('Friends: ann@example.org, "Bo B" <bo@example.org>;, eve@example.com')
    assert got == [
        Group(
            "Friends", [A(None, None, "ann", "example.org"), A("Bo B", None, "bo", "example.org")]
        ),
        A(None, None, "eve", "example.com"),
    ]
    assert parse_addresses("undisclosed-recipients:;") == [Group("undisclosed-recipients", [])]


def test_envelope_form() -> None:
    assert addresses(b"Group Name:;") == b'((NIL NIL "Group Name" NIL)(NIL NIL NIL NIL))'
    assert addresses(b"<@route:user@domain>") == b'((NIL "@route" "user" "domain"))'
    assert addresses(b"Just A Name") == b'(("Just A Name" NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))'
    assert addresses(b"  ") == b"NIL"


def test_search_form() -> None:
    assert address_text("<user-from (comment)@ (comment) domain.org>") == "user-from@domain.org"
    assert address_text("=?utf-8?q?J=C3=BCrgen?= <j@example.de>") == "Jürgen <j@example.de>"
    assert address_text("Team: a@b.c;") == "Team: a@b.c;"
